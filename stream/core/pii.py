"""Personal data detection and masking on a normalised shadow of the text.

People write contact data to slip past filters: full-width or Arabic-Indic digits, Chinese
numerals (一三八…, 壹叁捌…), digits broken up by dots, dashes, emoji or zero-width characters,
``zhang (at) qq (dot) com``. Detection therefore runs on a *shadow*: every character NFKC
normalised, every kind of digit mapped to ASCII, invisible characters dropped, with a map from
each shadow position back to the original. Separators stay in the shadow; numbers are read as
runs of digit *groups* (digits between separators) and a match must start and end on group
boundaries, so a phone number spaced out by a user is found while a phone-shaped slice of a
longer order number is not. The original text is then masked at exactly the matched spans with
typed placeholders, leaving everything else untouched.

Pure and dependency-free, so the worker, the dead-letter path and the privacy report agree.
"""

from __future__ import annotations

import bisect
import ipaddress
import itertools
import re
import threading
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass

# Also the priority on overlaps: an e-mail made of a phone number is an e-mail.
PLACEHOLDERS: dict[str, str] = {
    "email": "[EMAIL]",
    "wechat": "[WECHAT]",
    "qq": "[QQ]",
    "passport": "[PASSPORT]",
    "ip": "[IP]",
    "id_number": "[ID]",
    "bank_card": "[CARD]",
    "phone": "[PHONE]",
    "plate": "[PLATE]",
    "address": "[ADDRESS]",
}
KINDS: tuple[str, ...] = tuple(PLACEHOLDERS)

# Chinese numerals read digit by digit (phone numbers dictated as 一三八…, 幺 for 1, financial forms).
_CN_DIGITS = {
    **dict.fromkeys("〇零○◯", "0"),
    **dict.fromkeys("一幺壹", "1"),
    **dict.fromkeys("二贰貳", "2"),
    **dict.fromkeys("三叁參叄", "3"),
    **dict.fromkeys("四肆", "4"),
    **dict.fromkeys("五伍", "5"),
    **dict.fromkeys("六陆陸", "6"),
    **dict.fromkeys("七柒", "7"),
    **dict.fromkeys("八捌", "8"),
    **dict.fromkeys("九玖", "9"),
}
_CN_TABLE = str.maketrans(_CN_DIGITS)


def _digit_table() -> dict[int, str]:
    """Every code point whose NFKC form is one decimal digit (any script, superscripts, circled)."""
    table: dict[int, str] = {}
    for cp in range(0x80, 0x20000):
        ch = chr(cp)
        value = unicodedata.decimal(ch, None)
        if value is None:
            folded = unicodedata.normalize("NFKC", ch)
            if len(folded) == 1 and "0" <= folded <= "9":
                value = int(folded)
        if value is None:
            value = unicodedata.digit(ch, None)  # dingbat and enclosed digits: ❶ ➀ ⓵
        if value is not None:
            table[cp] = str(value)
    return table


def _ranges(codepoints: list[int]) -> str:
    """A regex character-class body for a sorted list of code points."""
    out: list[str] = []
    start = prev = codepoints[0]
    for cp in [*codepoints[1:], -2]:
        if cp != prev + 1:
            out.append(
                re.escape(chr(start))
                + ("" if start == prev else "-" + re.escape(chr(prev)))
            )
            start = cp
        prev = cp
    return "".join(out)


_DIGITS = _digit_table()
# Unicode's Default_Ignorable_Code_Point: rendered as nothing, whatever their category (the Hangul
# fillers U+3164, U+1160, U+115F, U+FFA0 are letters), so they hide nothing between digits.
DEFAULT_IGNORABLE: frozenset[int] = frozenset(
    (
        0xAD, 0x34F, 0x61C, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x3164, 0xFEFF, 0xFFA0,
        *range(0x180B, 0x1810), *range(0x200B, 0x2010), *range(0x202A, 0x202F),
        *range(0x2060, 0x2070), *range(0xFE00, 0xFE10), *range(0xFFF0, 0xFFF9),
        *range(0x1BCA0, 0x1BCA4), *range(0x1D173, 0x1D17B), *range(0xE0000, 0xE1000),
    )
)
_DIGIT_MAP = str.maketrans(_DIGITS)
_INVISIBLE_CPS = sorted(
    cp
    for cp in (*range(0x20000), *range(0xE0000, 0xE1000))
    if (
        unicodedata.category(chr(cp)) in ("Cf", "Cs", "Mn", "Me")  # marks: a tilde on a digit hides nothing
        or (unicodedata.category(chr(cp)) == "Cc" and not chr(cp).isspace())
    )
    or cp == 0x20E3
    or cp in DEFAULT_IGNORABLE
)
_INVISIBLE = re.compile(f"[{_ranges(_INVISIBLE_CPS)}]")
_INVISIBLE_SET = frozenset(_INVISIBLE_CPS)
# Separators that may sit between the digits of one number: spaces, every punctuation mark, math and
# currency sign, symbol and emoji, and what Chinese typists use as dashes and bars (丨 丶 ㄧ ー 丿 点),
# in runs of any length. Not , : which separate distinct numbers and times in prose (ids and dead
# letters read those too: see ``strict``), nor @ (an e-mail).
# Modifier letters that are marks, not letters, count too: bopomofo tone marks ˊ ˇ ˋ ˉ, bars ˍ, primes ʹ,
# length marks ː, tone letters (the Spacing Modifier Letters and Latin tone-letter blocks; their
# superscript letters ʰ ˡ ˣ fold to letters under NFKC and stay letters), and the Arabic tatweel ـ.
_SEP_CPS = sorted(
    (
        {ord(c) for c in " \t\n\r\f\v.-_()[]{}<>+~|=*#'\"!?$^`\\/;%&丨丶ㄧー丿乀点ـ\u2028\u2029"}
        | {
            cp
            for cp in range(0x80, 0x20000)
            if (
                unicodedata.category(chr(cp)) in ("Pd", "Zs", "So", "Sk", "Sm", "Sc", "Po", "Ps", "Pe", "Pi", "Pf")
                or (unicodedata.category(chr(cp)) == "Lm" and (0x2B0 <= cp < 0x300 or 0xA700 <= cp < 0xA800))
            )
            and unicodedata.normalize("NFKC", chr(cp)) == chr(cp)
        }
    )
    - set(_DIGITS)
    - {ord(c) for c in "@﹫"}
)
_SEP = _ranges(_SEP_CPS)
# Dashes between house, building and room numbers (88—1号, 万科城12–3–402): every dash mark, ~ and the minus
# sign (what the full-width and small forms fold to), and the bars typed for a dash.
_DASH_CPS = sorted(
    {cp for cp in _SEP_CPS if unicodedata.category(chr(cp)) == "Pd"} | {ord(c) for c in "~−⁓ーㄧˉˍ˗─━⎯"}
)
_DASH = f"[{_ranges(_DASH_CPS)}]"
_CN = "".join(_CN_DIGITS)

# Digits NFKC leaves alone (٣, ३, dingbat ❶ ➀ ⓵): normalised text may still hold them.
_KEPT_DIGITS = _ranges(sorted(cp for cp in _DIGITS if unicodedata.is_normalized("NFKC", chr(cp))))
_OTHER_DIGIT = re.compile(f"[{_KEPT_DIGITS}]")
# Normalised text without digits, numerals, Latin letters or @ cannot hold anything found here.
_GATE = re.compile(f"[0-9A-Za-z@﹫艾圈鼠{_CN}{_KEPT_DIGITS}]")
_CN_ANY = re.compile(f"[{_CN}]")
_ANY_DIGIT = re.compile("[0-9]")
_CN_RUN = re.compile(rf"[0-9{_CN}](?:[{_SEP}]*[0-9{_CN}]){{4,}}")
_RUN = re.compile(rf"[0-9](?:[{_SEP}]*[0-9])*")
_GROUP = re.compile(r"[0-9]+")
_SEP_ONLY = re.compile(rf"[{_SEP}]{{0,2}}")

_MONTH_DAY = r"(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])"
# Region, birth date, sequence: 17 digits, the whole ID (the 18th is a checksum of these), then the check digit.
_ID17 = re.compile(rf"[1-9][0-9]{{5}}(?:18|19|20)[0-9]{{2}}{_MONTH_DAY}[0-9]{{3}}")
_ID18 = re.compile(rf"{_ID17.pattern}[0-9]")
_ID15 = re.compile(rf"[1-9][0-9]{{7}}{_MONTH_DAY}[0-9]{{3}}")
_MOBILE = re.compile(r"(?:0086|86|0)?1[3-9][0-9]{9}")
_HK_MO = re.compile(r"(?:00)?85[23][4-9][0-9]{7}")
_TW = re.compile(r"(?:886|0)9[0-9]{8}")
# Area code, then a local number; only Beijing (10) and the 2x cities get locals starting with 1 (010 12345678).
_LANDLINE = re.compile(
    r"((?:0086|86)0?|0)(?:(10|2[0-9])[1-9]|([3-9][0-9]{2})[2-9])[0-9]{6,7}"
)
_CARD_IIN = re.compile(r"(?:[3-69]|2[2-7])[0-9]{14,18}")
_LONGEST = 22  # 0086 + area code + 8 digits, or a 19-digit card with slack

# Latin, Greek and Cyrillic letters: look-alikes (Cyrillic а in zhаngsаn) belong to the local part.
_LOCAL_LETTER = "a-z0-9\u00c0-\u024f\u0370-\u03ff\u0400-\u04ff"
_LOCAL_ASCII = rf"(?<![{_LOCAL_LETTER}._%+\-])[{_LOCAL_LETTER}][{_LOCAL_LETTER}._%+\-]*"
_LOCAL_OTHER = r"[^\W_a-z0-9]{1,4}"  # IDN local part (a Chinese name); short so the sentence before it survives
_AT = r"(?:\s*[@﹫]{1,3}\s*|\s*[(\[{<【（]\s*(?:at|@|艾特)\s*[)\]}>】）]\s*|\s*(?:艾特|圈a)\s*)"
_DOT = (
    r"(?:\s*[.。]{1,3}\s*|\s*[(\[{<【（]\s*(?:dot|点)\s*[)\]}>】）]\s*|\s+dot\s+|\s*点\s*)"
)
# Labels may be IDN (Latin, Cyrillic, Greek, kana, hangul, CJK without 点, which spells a dot).
_LABEL = "[a-z0-9\\-\u00c0-\u024f\u0370-\u03ff\u0400-\u04ff\u3040-\u30ff\u3400-\u4dbf\u4e00-\u70b8\u70ba-\u9fff\uac00-\ud7af]{1,63}+"  # possessive: a dot never starts with a label character
# A top-level domain takes any letters glued to it (look-alikes too), so that masking twice changes nothing.
_TLD = rf"(?:[a-z]{{2,24}}[{_LOCAL_LETTER}]*+(?!\.[a-z0-9])|中国|中國|公司|网络|網絡|在线|商城|集团|香港|台湾|台灣|新加坡|我爱你|网址|信息|移动)"
_PROVIDER = r"(?:qq|163|126|139|188|yeah|sina|sohu|aliyun|foxmail|gmail|googlemail|hotmail|outlook|live|msn|yahoo|icloud|me|proton(?:mail)?)"
_EMAIL = re.compile(
    rf"(?:{_LOCAL_ASCII}|{_LOCAL_OTHER})(?:{_AT}{_LABEL}(?:{_DOT}{_LABEL})*?{_DOT}"
    # Spelled out, at a mail provider: "zhang at qq dot com" (also what normalising leaves of {at}).
    rf"|\s+at\s+{_PROVIDER}(?:\s+dot\s+{_LABEL})*?\s+dot\s+){_TLD}",
    re.IGNORECASE,
)
# A domain typed with stray spaces (q q.com, qq.c om): a known provider or top-level domain, letter by letter.
_SPACED_PROVIDER = "|".join(
    r"\s?".join(name)
    for name in ("qq", "163", "126", "139", "sina", "sohu", "aliyun", "foxmail", "gmail", "hotmail", "outlook", "yahoo", "icloud")
)
_SPACED_TLD = "|".join(r"\s?".join(tld) for tld in ("com", "cn", "net", "org", "edu"))
_EMAIL_SPACED = re.compile(
    rf"(?:{_LOCAL_ASCII}|{_LOCAL_OTHER}){_AT}(?:{_SPACED_PROVIDER}|{_LABEL})(?:{_DOT}{_LABEL})*?{_DOT}(?:{_SPACED_TLD})(?![a-z])",
    re.IGNORECASE,
)
# 圈 and 小老鼠 (a little mouse: @) only after a Latin local part: 朋友圈 abc.com is no address.
_EMAIL_MOUSE = re.compile(
    rf"{_LOCAL_ASCII}\s*(?:圈|小老鼠)\s*{_LABEL}(?:{_DOT}{_LABEL})*?{_DOT}{_TLD}", re.IGNORECASE
)
# A mail provider without its top-level domain (zhangsan@gmail).
_EMAIL_BARE = re.compile(
    rf"{_LOCAL_ASCII}\s*[@﹫]{{1,3}}\s*(?:qq|163|126|139|sina|sohu|aliyun|foxmail|gmail|googlemail|hotmail|outlook|yahoo|icloud)(?![a-z0-9.\-])",
    re.IGNORECASE,
)
_EMAIL_HINT = re.compile(r"[@﹫]|at|艾特|圈|小老鼠", re.IGNORECASE)
_SPACE = re.compile(r"\s")

# What may sit between a key word and the id: 号码, 群号, 邮箱, a colon, 是, a heart or another symbol.
_CJK_RANGE = "\u3400-\u4dbf\u4e00-\u9fff"
# The word may stand apart (wechat id, 微 信 号); an id glued to "id" is the id itself (微信idol_fan88).
_FILLER = r"(?:\s{0,2}(?:群号?|号码?|邮箱|id(?![a-z])|账号|帐号))?[^\w\n]{0,3}(?:是|为)?[\s:：]{0,2}"
_KEY_HINT = re.compile(
    r"[加+➕]\s*[vV薇威微]|[wWvV]\s*[xX]|[qQ]\s*[qQ号群:：]|[微威薇徽vV][^\w\n]{0,2}信|薇|扣|企鹅|加群|绿泡泡|护照|通行证|回乡证|台胞证|[vV威][^\w\n]{0,2}[:：]|[wW]\s*[eE][iI]|[cC][hH][aA][tT]|[pP][aA][sS][sS]"
    r"|[微威薇徽]\s*[xX][iI][nN]|加\s*[❤♥💗💕💚]"
)
_WXID = re.compile(r"(?<![a-z0-9])wxid_[a-z0-9_\-]{3,30}", re.IGNORECASE)
# ➕ is a plus as well (＋ ﹢ ⁺ ₊ already fold to +): ➕V zs1988, +微 zs1988.
_WECHAT_KEY = re.compile(
    r"(?:[微威薇徽v][^\w\n]{0,2}信|绿泡泡|(?<![a-z])(?:[vw]\s?x|wei\s?xin|wechat|vchat)(?![a-z])|加\s*(?:v|[薇威微])(?![^\w\n]{0,2}信)"
    r"|[+➕]\s*(?:v(?![a-z])|[薇威微](?![^\w\n]{0,2}信))|(?<![a-z])v[^\w\n]{0,2}(?=[:：])|薇(?=\s*[^\w\s])"
    r"|(?<![a-z])wei\s?信|[微威薇徽]\s?xin(?![a-z])|威[^\w\n]{1,2}(?=[:：])|加\s*[❤♥💗💕💚](?![^\w\n]{0,2}信))"
    + _FILLER,
    re.IGNORECASE,
)
_WECHAT_ID = re.compile(r"[a-z][a-z0-9_\-]{5,19}(?![a-z0-9_\-])", re.IGNORECASE)
# An id typed with spaces (微信 zhang san 88): letters, then up to three more pieces, one with a digit.
_WECHAT_SPACED = re.compile(r"[a-z][a-z0-9_\-]*(?: [a-z0-9_\-]+){1,3}(?![a-z0-9_\-])", re.IGNORECASE)
# After an explicit colon an id may start with a name in Chinese characters (微信：張三88abc).
_WECHAT_NAMED = re.compile(rf"[{_CJK_RANGE}]{{1,4}}[a-z0-9_\-]*[0-9][a-z0-9_\-]*", re.IGNORECASE)
_PLACEHOLDER_WORD = re.compile("|".join(map(re.escape, PLACEHOLDERS.values())))  # an id already masked
_QQ_KEY = re.compile(
    rf"(?:(?<![a-z])q\s?q(?![a-z])|扣扣|企鹅|q号|(?<![a-z])q\s?群|加群|(?<![a-z])q(?=\s*[:：])|扣(?=[\s:：]|[0-9]{{6}})){_FILLER}",
    re.IGNORECASE,
)
_PASSPORT = re.compile(
    r"(?<![a-z0-9])(?:[eg][\s\-]?[0-9]{4}[\s\-]?[0-9]{4}|e[a-hj-np-z][0-9]{7})(?![a-z0-9])",
    re.IGNORECASE,
)
_PASSPORT_KEY = re.compile(
    rf"(?:护照|passport|通行证|回乡证|台胞证){_FILLER}(?:no\.?\s*)?([a-z]{{1,2}}[\s\-]?[0-9]{{6,10}}|[0-9]{{8,10}})(?![a-z0-9])",
    re.IGNORECASE,
)
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|[01]?[0-9]?[0-9])"
_IP_DOT = r"(?:\.|\s*[.。点]\s*)"
# Not part of a longer dotted run (a fifth group makes it something else).
_IPV4 = re.compile(rf"(?<![0-9.。点]){_OCTET}(?:{_IP_DOT}{_OCTET}){{3}}(?![0-9]|{_IP_DOT}[0-9])")
_IP_SPLIT = re.compile(r"\s*[.。点]\s*")
# A word naming an address just before it: then any host address is one, in any written form.
_IP_CONTEXT = re.compile(
    r"(?:ip|地址|服务器|server|host|主机|网关|gateway|[内外公]网|局域网|路由|ping|代理|proxy|vpn|登录|访问)[^0-9]{0,6}$",
    re.IGNORECASE,
)
_VERSION_AFTER = re.compile(r"\s*(?:版|更新|升级|补丁|version|ver(?![a-z])|build|release)", re.IGNORECASE)
# Well-known public resolvers name a service, not a person (1.1.1.1, 8.8.8.8, 114.114.114.114).
_PUBLIC_SERVICES = frozenset(
    {"1.1.1.1", "1.0.0.1", "8.8.8.8", "8.8.4.4", "9.9.9.9", "114.114.114.114", "114.114.115.115",
     "223.5.5.5", "223.6.6.6", "119.29.29.29", "180.76.76.76"}
)
_IPV6 = re.compile(
    r"(?<![0-9a-f:])(?:[0-9a-f]{0,4}:){2,7}(?:[0-9]{1,3}(?:\.[0-9]{1,3}){3}|[0-9a-f]{1,4})?(?![0-9a-f:]|\.[0-9])",
    re.IGNORECASE,
)
_VERSION_BEFORE = re.compile(
    r"(?:(?<![a-z])(?:v|ver|version|build)|版本号?|固件|系统|(?:升级|更新|升)到)[\s:：.]*$", re.IGNORECASE
)
# A price, an amount or a duration (售价 128.88.66.99, 123.45.67.89 元, 100.100.100.100 ms, 12.12.12.12 促销),
# or a program's version (Python 3.11.4.1: a Latin word just before).
_NOT_HOST_AFTER = re.compile(r"\s?(?:元|块|毛|折|促销|活动|大促|ms|毫秒|秒|%|bug)", re.IGNORECASE)
_NOT_HOST_BEFORE = re.compile(r"(?:售价|价格|价|¥|￥|\$|[a-z]{2,}\s)\s?$", re.IGNORECASE)
_PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
_PLATE_CHAR = "[a-hj-np-z0-9]"
_PLATE = re.compile(
    # Province, letter, then five or six characters, single spaces allowed (京 A12345, 京A 1234 5);
    # or a Guangdong plate for Hong Kong and Macau cars (粤Z1234港).
    rf"[{_PROVINCES}]\s?[a-hj-np-z][\s·•・.\-]?({_PLATE_CHAR}(?:\s?{_PLATE_CHAR}){{4,5}})(?![a-z0-9])"
    rf"|粤\s?z[\s·•・.\-]?({_PLATE_CHAR}{{4}})[港澳]",
    re.IGNORECASE,
)
# A product code written like a plate or passport number: 型号 E12345678, 苏A12345型号.
_PRODUCT_BEFORE = re.compile(r"(?:型号|货号|编号|款号|料号|model|sku|part)[\s:：#no.]*$", re.IGNORECASE)
_PRODUCT_AFTER = re.compile(r"\s?(?:型|款|系列|版|级|号?订单|次)")
_NEW_ENERGY = re.compile(r"[dfDF][a-hj-np-zA-HJ-NP-Z0-9][0-9]{4}|[0-9]{5}[dfDF]")

_NUM = rf"[0-9十百千拾佰仟廿卅零两{_CN}]+"
# Where a number may start: not inside another (a match from inside one is also a match from its start,
# and trying every position of a long run of digits made each scan quadratic: 4.5 s for 16,000 digits).
_NUM_START = rf"(?<![0-9十百千拾佰仟廿卅零两{_CN}])"
_CJK = _CJK_RANGE
_STREET = f"(?<=[{_CJK}])(?:路|街|巷子?|弄|胡同|(?<![知味难频通轨渠赛车])道)"
_STREET_NAME = 8  # characters before 路/街… masked with the number: the street name
_REGION_END = frozenset("省市区县镇乡")  # the street name stops there: 浦东新区 is no secret
# Traditional forms too: 號 樓 棟 單元 門.
_UNIT = r"(?:[号號][楼樓]|[号號]院|[栋棟]|幢|座|[单單]元|[门門]|室|[楼樓]|层|[号號]|弄|支弄|户|巷)"
# A bare room number after a building, unit or entrance: …2单元1102, …1门302, …二单元一一零二.
_ROOM = rf"(?:(?<=[元门楼栋幢座門樓棟])\s?[0-9{_CN}]{{2,4}}(?![0-9{_CN}年月日元块]))?"
_HOUSE = (
    rf"(?:\s?{_NUM}段)?\s?[甲乙丙丁]?{_NUM}(?:{_DASH}{_NUM})?\s?(?:[号號]|弄|巷)(?!线|电池|球)"
    rf"(?:[院楼樓]|\s?{_NUM}(?:{_DASH}{_NUM})*\s?{_UNIT})*{_ROOM}"
)
# Building, unit, room (3栋2单元1201室, 5 栋 2 单元 301 室); the room has two characters at least, so
# that 2号楼 3单元 alone (a metro exit, a bus stop) is no address.
_ROOM_NUM = rf"[0-9十百千拾佰仟廿卅零两{_CN}]{{2,}}"
_BUILDING = (
    rf"{_NUM_START}{_NUM}\s?(?:[号號][楼樓]|[栋棟]|幢|座)\s?(?:{_NUM}\s?(?:[单單]元|[门門])\s?)?{_ROOM_NUM}"
    rf"(?:\s?(?:室|[号號]|房|户))?"
)
# Building-unit-room after an estate's name (万科城12-3-402) or before 室 (3-2-1102室).
_ESTATE = "城苑园庭府居湾村里坊邸轩阁寓厦"
_ADDRESS = re.compile(
    rf"({_STREET}){_HOUSE}|{_BUILDING}|{_NUM_START}{_NUM}\s?[单單]元\s?{_ROOM_NUM}(?:\s?(?:室|[号號]|房|户))?"
    rf"|(?<=[{_ESTATE}])\s?[0-9]{{1,3}}{_DASH}[0-9]{{1,2}}{_DASH}[0-9]{{3,4}}(?![0-9]|{_DASH})(?:室|[号號]|房|户)?"
    rf"|(?:[0-9]{{1,4}}{_DASH}){{0,3}}[0-9]{{3,4}}室"
)
_ADDRESS_HINT = re.compile(f"[号號弄巷栋棟幢座单單元室]|[{_ESTATE}]\\s?[0-9]")


def _luhn(digits: str) -> bool:
    total = 0
    for i, d in enumerate(reversed(digits)):
        n = int(d) * (2 if i % 2 else 1)
        total += n - 9 if n > 9 else n
    return total % 10 == 0


@dataclass(frozen=True, slots=True)
class Shadow:
    """The normalised text used for detection and where each of its characters came from."""

    text: str
    origin: (
        tuple[int, ...] | None
    )  # original index of each shadow character; None: the same index
    length: int  # of the original text
    numerals: frozenset[int] = (
        frozenset()
    )  # shadow positions of digits that were Chinese numerals
    plain: str = ""  # ``text`` before Chinese numerals became digits: e-mails and ids are read here

    def span(self, start: int, end: int) -> tuple[int, int]:
        """Original span covering shadow characters ``start`` to ``end`` (exclusive)."""
        if self.origin is None:
            return start, end
        last = self.origin[end - 1] + 1
        # Invisible characters trailing the match (a keycap's U+20E3) go with it.
        following = self.origin[end] if end < len(self.origin) else self.length
        return self.origin[start], max(last, following)


# A digit and its punctuation in one character: 🄂 is "1,", ⒈ "1.", ⑴ "(1)". The mark is part of the glyph,
# not typed between digits, and a comma would split a number in prose, so only the digits are kept.
_DIGIT_GLYPH = re.compile(r"\(?([0-9]+)[.,)]")


class _Fold(dict[int, str]):
    """``str.translate`` table: each character's NFKC form with digits in ASCII, "" for invisible ones."""

    def __missing__(self, cp: int) -> str:
        folded = (
            ""
            if cp in _INVISIBLE_SET
            else "".join(  # a mark NFKC leaves behind (¸ is a space and a cedilla) goes too
                c for c in unicodedata.normalize("NFKC", chr(cp)) if ord(c) not in _INVISIBLE_SET
            ).translate(_DIGIT_MAP)
        )
        if glyph := _DIGIT_GLYPH.fullmatch(folded):
            folded = glyph[1]
        if cp < 0x20000:  # bounds the cache; rarer planes are simply recomputed
            self[cp] = folded
        return folded


_FOLD = _Fold()


def shadow(text: str) -> Shadow:
    """NFKC per character, every digit in ASCII, invisible characters gone; same length where possible."""
    if unicodedata.is_normalized("NFKC", text) and not _INVISIBLE.search(text):
        mapped, origin = (text.translate(_DIGIT_MAP) if _OTHER_DIGIT.search(text) else text), None
    else:
        mapped, origin = text.translate(_FOLD), None
        if len(mapped) != len(text) or _INVISIBLE.search(text):  # not one to one: map each position back
            parts = [_FOLD[ord(ch)] for ch in text]
            mapped = "".join(parts)
            origin = tuple(i for i, part in enumerate(parts) for _ in part)
    plain = mapped
    numerals: set[int] = set()
    if _CN_ANY.search(mapped):
        # Chinese numerals count as digits only in runs of five or more: 一三八… is a number, 一下 is not.
        for run in _CN_RUN.finditer(mapped):
            numerals.update(i for i in range(*run.span()) if mapped[i] in _CN_DIGITS)
        mapped = (
            "".join(_CN_DIGITS[c] if i in numerals else c for i, c in enumerate(mapped))
            if numerals
            else mapped
        )
    return Shadow(mapped, origin, len(text), frozenset(numerals), plain)


def digits_of(text: str) -> str:
    """Only the digits of ``text``, as ASCII, Chinese numerals included: how a leak is looked for."""
    return "".join(
        c
        for c in unicodedata.normalize("NFKC", text)
        .translate(_DIGIT_MAP)
        .translate(_CN_TABLE)
        if "0" <= c <= "9"
    )


class _Claims:
    """Matched shadow spans; the first claim on a character wins."""

    def __init__(self, size: int) -> None:
        self.taken = bytearray(size)
        self.spans: list[tuple[int, int, str]] = []

    def free(self, start: int, end: int) -> bool:
        return not any(self.taken[start:end])

    def add(self, start: int, end: int, kind: str) -> bool:
        if start >= end or not self.free(start, end):
            return False
        self.taken[start:end] = b"\x01" * (end - start)
        self.spans.append((start, end, kind))
        return True


def _claim_matches(
    pattern: re.Pattern[str],
    text: str,
    claims: _Claims,
    kind: str,
    group: int = 0,
    accept: Callable[[re.Match[str]], bool] | None = None,
) -> None:
    """Claim every (accepted) match; a rejected one is retried one character later, so that what is
    found does not depend on whether overlapping data was already masked (idempotence)."""
    pos = 0
    while m := pattern.search(text, pos):
        ok = (accept is None or accept(m)) and claims.add(*m.span(group), kind)
        pos = m.end() if ok else m.start() + 1


def _claim_addresses(plain: str, claims: _Claims) -> None:
    """Addresses; a street number takes up to eight characters of street name before 路/街… with it."""
    pos = 0
    while m := _ADDRESS.search(plain, pos):
        start = m.start()
        if m[1]:
            name = 0
            while (
                name < _STREET_NAME
                and start > 0
                and "\u3400" <= plain[start - 1] <= "\u9fff"
                and plain[start - 1] not in _REGION_END
                and claims.free(start - 1, start)
            ):
                start, name = start - 1, name + 1
        pos = m.end() if claims.add(start, m.end(), "address") else m.start() + 1


def _classify(
    digits: str, bounds: frozenset[int], x_follows: bool
) -> tuple[str, bool] | None:
    """Kind of a whole number and whether a following X belongs to it (the ID check character).

    ``bounds`` are the digit counts at which the user put separators: a landline split into
    groups must have its area code (after an optional 86) as a group of its own, which keeps
    dates (2024.05.01-2024.06.30) out.
    """
    n = len(digits)
    if n == 17 and _ID17.fullmatch(digits):  # whatever stands for the check character, or none
        return "id_number", x_follows
    if (n == 18 and _ID18.fullmatch(digits)) or (n == 15 and _ID15.fullmatch(digits)):
        return "id_number", False
    if (
        15 <= n <= 19
        and _CARD_IIN.fullmatch(digits)
        and (n != 15 or digits[:2] in ("34", "37"))
        and _luhn(digits)
    ):
        return "bank_card", False
    if _MOBILE.fullmatch(digits):
        return "phone", False
    # Hong Kong and Macau (+852 9123 4567: the country code a group of its own), Taiwan (0912-345-678, +886 912…).
    if (
        (_HK_MO.fullmatch(digits) and (digits.startswith("00") or 3 in bounds))
        or (_TW.fullmatch(digits) and (digits[0] == "0" or 3 in bounds) and bounds <= {3, 4, 6, 7, 9, 10})
    ):
        return "phone", False
    landline = _LANDLINE.fullmatch(digits)
    if landline:
        area_end = landline.end(1) + len(landline[2] or landline[3])
        prefix = {landline.end(1)}
        if not bounds or (
            area_end in bounds and {b for b in bounds if b < area_end} <= prefix
        ):
            return "phone", False
    return None


_CHECK_X = frozenset("Xx×χΧ✕✖╳Ххꓫ乂叉*")  # the ID check character and what is typed for it


def _x_after(s: str, end: int) -> int | None:
    """Position just past an ID check character X after ``end`` (at most two separators between)."""
    pos = end if end < len(s) and s[end] in _CHECK_X else _SEP_ONLY.match(s, end).end()
    if (
        pos < len(s)
        and s[pos] in _CHECK_X
        and not (pos + 1 < len(s) and s[pos + 1].isascii() and s[pos + 1].isalpha())
    ):
        return pos + 1
    return None


def _groups(
    s: str, start: int, end: int, numerals: frozenset[int]
) -> Iterator[tuple[int, int]]:
    """Digit groups of a run; a switch between Chinese numerals and digits also ends a group (八13800138000)."""
    for g in _GROUP.finditer(s, start, end):
        begin = g.start()
        for i in range(g.start() + 1, g.end()) if numerals else ():
            if (i in numerals) != (i - 1 in numerals):
                yield begin, i
                begin = i
        yield begin, g.end()


_DIMENSION_SEP = re.compile(r"[0-9]\s?[x×*✕]\s?[0-9]", re.IGNORECASE)
_DIMENSION_AFTER = re.compile(r"\s?(?:mm|cm|m(?![a-z])|毫米|厘米|米|英寸|寸|inch)", re.IGNORECASE)
_DIMENSION_BEFORE = re.compile(r"(?:尺寸|规格|长宽高|大小|size)[^0-9]{0,4}$", re.IGNORECASE)


def _dimensions(s: str, start: int, end: int) -> bool:
    """Sizes, not a phone: 138×1234×5678 mm, 规格 138*1234*5678: times signs between and a unit after or a
    size word before, or both of those (what normalising leaves of 尺寸 138×1234×5678 mm)."""
    unit = bool(_DIMENSION_AFTER.match(s, end))
    word = bool(_DIMENSION_BEFORE.search(s, max(0, start - 10), start))
    return (unit and word) or ((unit or word) and bool(_DIMENSION_SEP.search(s, start, end)))


# A mobile number typed with letters x between its 3-4-4 groups (138x1234x5678).
_PHONE_X = re.compile(r"(?<![0-9a-z])1[3-9][0-9][x×][0-9]{4}[x×][0-9]{4}(?![0-9a-z])", re.IGNORECASE)


def _one_as_dash(sh: Shadow) -> tuple[str, frozenset[int]] | None:
    """The shadow with each 一 between two digits read as a dash, not as the numeral 1.

    138一1234一5678 reads as 13811234 15678 with 一 as a digit and as a mobile number with 一 as a
    dash; both readings are searched, so a phone-shaped run is masked however it is read.
    """
    dashes = [m.start() for m in _ONE_BETWEEN.finditer(sh.plain)]
    if not dashes:
        return None
    chars = list(sh.text)
    for i in dashes:
        chars[i] = " "
    return "".join(chars), sh.numerals - frozenset(dashes)


_ONE_BETWEEN = re.compile("(?<=[0-9])一(?=[0-9])")


def _numbers(s: str, numerals: frozenset[int], claims: _Claims) -> None:
    """Phones, IDs and cards: whole numbers made of consecutive digit groups of a run."""
    for run in _RUN.finditer(s):
        groups = [
            g for g in _groups(s, run.start(), run.end(), numerals) if claims.free(*g)
        ]
        i = 0
        while i < len(groups):
            best: tuple[int, str, int] | None = None
            digits = ""
            bounds: list[int] = []
            for j in range(i, len(groups)):
                if j > i and not claims.free(groups[j - 1][1], groups[j][0]):
                    break
                digits += s[groups[j][0] : groups[j][1]]
                if len(digits) > _LONGEST:
                    break
                x_end = _x_after(s, groups[j][1]) if len(digits) == 17 else None
                found = _classify(digits, frozenset(bounds), x_end is not None)
                bounds.append(len(digits))
                if found:
                    best = (j, found[0], x_end if found[1] and x_end else groups[j][1])
            if best is None:
                i += 1
                continue
            j, kind, end = best
            start = groups[i][0]
            if kind == "phone" and _dimensions(s, start, end):
                i += 1
                continue
            if start and s[start - 1] == "+":
                start -= 1
            if start and s[start - 1] == "(" and ")" in s[start:end]:
                start -= 1
            claims.add(start, end, kind)
            i = j + 1


# A quantity, not an id: 扣 100000 积分, 加群 200000 人.
_AMOUNT_AFTER = re.compile(r"\s?(?:元|块|分|积分|%|个|件|人|天|次)")


def _claim_digits_after(
    s: str, pos: int, claims: _Claims, kind: str, lo: int, hi: int
) -> bool:
    """Claim the digit groups of a run starting at ``pos`` while they total at most ``hi`` digits."""
    run = _RUN.match(s, pos)
    if not run:
        return False
    end, count = pos, 0
    for g in _GROUP.finditer(s, run.start(), run.end()):
        if count + len(g[0]) > hi:
            break
        count += len(g[0])
        end = g.end()
    return count >= lo and not _AMOUNT_AFTER.match(s, end) and claims.add(pos, end, kind)


def _not_placeholder(m: re.Match[str]) -> bool:
    """A key word that is not a placeholder's own word ([WECHAT], [QQ], [PASSPORT]): what follows a placeholder
    was read when it was masked, so taking it for a key again would break idempotence."""
    return not _PLACEHOLDER_WORD.match(m.string, m.start() - 1)


def _keyed(plain: str, s: str, claims: _Claims) -> None:
    """Chat ids and passports, found by their own shape or the word that introduces them.

    Ids are read in ``plain``, digits in ``s`` (where numerals are digits).
    """
    _claim_matches(_WXID, plain, claims, "wechat")
    for m in filter(_not_placeholder, _WECHAT_KEY.finditer(plain)):
        spaced = _WECHAT_SPACED.match(plain, m.end())
        named = _WECHAT_NAMED.match(plain, m.end()) if re.search("[:：是为]", m[0]) else None
        ident = next(
            (
                found
                for found in (spaced, named, _WECHAT_ID.match(plain, m.end()))
                if found
                and (found is not spaced or re.search("[0-9]", found[0]))
                and not _PLACEHOLDER_WORD.match(plain, found.start() - 1)
            ),
            None,
        )
        if ident:
            claims.add(*ident.span(), "wechat")
        else:
            _claim_digits_after(s, m.end(), claims, "wechat", 5, 20)
    for m in filter(_not_placeholder, _QQ_KEY.finditer(plain)):
        _claim_digits_after(s, m.end(), claims, "qq", 5, 12)
    _claim_matches(_PASSPORT_KEY, plain, claims, "passport", 1, accept=_not_placeholder)


def _ipv4(m: re.Match[str]) -> bool:
    """A host address, not a version number (版本 1.0.0.12, 3.14.159.26 版本) or a decimal (0.5.1.2).

    With a word such as IP, 服务器 or 网关 before it (or a port or prefix length after it) any
    host address counts. Without one it must look like one: not a public resolver (1.1.1.1 DNS),
    first octet 1-223 but not 127, not all octets single digits (第 2.3.4.5 条), no leading zeros,
    and written with plain dots unless it is a private address (192点168点1点23).
    """
    text, start, end = m.string, m.start(), m.end()
    parts = _IP_SPLIT.split(m[0])
    octets = [int(p) for p in parts]
    first, second = octets[0], octets[1]
    if first == 0 or _VERSION_AFTER.match(text, end) or _VERSION_BEFORE.search(text, max(0, start - 12), start):
        return False
    if _IP_CONTEXT.search(text, max(0, start - 16), start) or re.match(r"[:/][0-9]", text[end : end + 2]):
        return True
    if _NOT_HOST_AFTER.match(text, end) or _NOT_HOST_BEFORE.search(text, max(0, start - 8), start):
        return False
    private = first == 10 or (first, second >> 4) == (172, 1) or (first, second) == (192, 168)
    return (
        first <= 223
        and first != 127
        and max(octets) >= 10
        and not any(len(p) > 1 and p[0] == "0" for p in parts)
        and (private or len(m[0]) == sum(map(len, parts)) + 3)  # plain dots unless private
        and ".".join(map(str, octets)) not in _PUBLIC_SERVICES
    )


def _ipv6(m: re.Match[str]) -> bool:
    if sum(1 for part in m[0].split(":") if part) < 2:
        return False
    try:
        ipaddress.IPv6Address(m[0])
    except ValueError:
        return False
    return True


def _product_code(m: re.Match[str]) -> bool:
    """A model or article number: named as one just before, or followed by 型号/款/系列."""
    return bool(
        _PRODUCT_BEFORE.search(m.string, max(0, m.start() - 12), m.start())
        or _PRODUCT_AFTER.match(m.string, m.end())
    )


def _passport(m: re.Match[str]) -> bool:
    return not _product_code(m)


def _plate(m: re.Match[str]) -> bool:
    """Five characters with at least three digits, or a six-character new-energy plate (D/F)."""
    if _product_code(m):
        return False
    if m[2]:
        return True
    tail = m[1].replace(" ", "")
    return (len(tail) == 5 and sum(c.isdigit() for c in tail) >= 3) or (
        len(tail) == 6 and bool(_NEW_ENERGY.fullmatch(tail))
    )


_NOT_ALNUM = re.compile(r"[\W_]")
_IDENTIFIER = 128  # the longest id the schemas accept; strict mode reads a value this short as one identifier: all its digits, as one number


def _strict(sh: Shadow, claims: _Claims) -> None:
    """Numbers split by any punctuation (138/1234/5678, 138,1234,5678) and, in a short value, all of its
    digits read as one number (u138a1234b5678): how an identifier or a dead letter is read.

    Every Chinese numeral is a digit here, not only those in runs (一三八,一二三四,五六七八): ids and
    attributes are no prose whose words (一个, 三星) they could be, and a dead letter may over-mask. All the
    digits are read both ways, so a numeral word next to the number (u138a1234b5678第一) hides nothing.
    """
    s = sh.plain.translate(_CN_TABLE)
    numerals = frozenset(m.start() for m in _CN_ANY.finditer(sh.plain))
    _numbers(_NOT_ALNUM.sub(" ", s), numerals, claims)
    if len(s) <= _IDENTIFIER:
        for text in (s, sh.text) if s != sh.text else (s,):
            positions = [m.start() for m in _ANY_DIGIT.finditer(text)]
            found = _classify("".join(text[i] for i in positions), frozenset(), False) if positions else None
            if found:
                claims.add(positions[0], positions[-1] + 1, found[0])


def _spans(sh: Shadow, strict: bool = False) -> list[tuple[int, int, str]]:
    s, plain = sh.text, sh.plain
    claims = _Claims(len(s))
    if _EMAIL_HINT.search(plain):
        _claim_matches(_EMAIL, plain, claims, "email")
        if "圈" in plain or "小老鼠" in plain:
            _claim_matches(_EMAIL_MOUSE, plain, claims, "email")
        if _SPACE.search(plain):
            _claim_matches(_EMAIL_SPACED, plain, claims, "email")
        _claim_matches(_EMAIL_BARE, plain, claims, "email")
    if _KEY_HINT.search(plain):
        _keyed(plain, s, claims)
    if _ANY_DIGIT.search(s):
        _claim_matches(_PASSPORT, plain, claims, "passport", accept=_passport)
        if (
            "::" in plain or plain.count(":") >= 7
        ):  # first: an IPv6 address may end in an IPv4 one
            _claim_matches(_IPV6, plain, claims, "ip", accept=_ipv6)
        if "." in plain or "。" in plain or "点" in plain:
            _claim_matches(_IPV4, plain, claims, "ip", accept=_ipv4)
        _numbers(s, sh.numerals, claims)
        if "一" in plain and (dashed := _one_as_dash(sh)):
            _numbers(*dashed, claims)
        if "x" in s or "X" in s or "×" in s:
            _claim_matches(_PHONE_X, s, claims, "phone", accept=lambda m: not _dimensions(m.string, *m.span()))
        _claim_matches(_PLATE, s, claims, "plate", accept=_plate)
    if _ADDRESS_HINT.search(plain):
        _claim_addresses(plain, claims)
    if strict and (_ANY_DIGIT.search(s) or _CN_ANY.search(plain)):
        _strict(sh, claims)
    return claims.spans


# Right-to-left override: what follows, up to a pop or the end of the line, is displayed reversed.
_RLO = re.compile("\u202e([^\u202c\u202e\n\u2029]*)")


def _reversed_spans(text: str, strict: bool) -> Iterator[tuple[int, int, str]]:
    """Spans found in the displayed (reversed) form of each right-to-left override in ``text``.

    The reversed segments are read in one pass, joined by commas (which no number or e-mail
    crosses), so a text of many short overrides costs one scan.
    """
    segments = [(m.start(1), m.end(1)) for m in _RLO.finditer(text) if m[1]]
    joined = ",".join(text[a:b][::-1] for a, b in segments)
    offsets = list(itertools.accumulate((b - a + 1 for a, b in segments), initial=0))
    for start, end, kind in find(joined, strict=strict):
        k = bisect.bisect_right(offsets, start) - 1
        while k < len(segments) and offsets[k] < end:
            a, b = segments[k]
            lo, hi = max(start, offsets[k]) - offsets[k], min(end, offsets[k] + b - a) - offsets[k]
            if lo < hi:
                yield b - hi, b - lo, kind
            k += 1


def find(text: str, *, strict: bool = False) -> Iterator[tuple[int, int, str]]:
    """Spans of personal data in ``text`` (original indices, sorted, not overlapping) and their kinds.

    ``strict`` is for identifiers, attribute values and dead letters rather than prose: digit groups
    separated by any punctuation form one number, and a value of at most 128 characters is also read
    as the one number all its digits make.
    """
    if unicodedata.is_normalized("NFKC", text) and not _GATE.search(text):
        return
    sh = shadow(text)
    spans = [(*sh.span(start, end), kind) for start, end, kind in _spans(sh, strict)]
    if "\u202e" in text:
        spans += _reversed_spans(text, strict)
    last: tuple[int, int, str] | None = None
    for start, end, kind in sorted(spans):  # merged: a reversed match may overlap a forward one
        if last and start < last[1]:
            last = (last[0], max(last[1], end), last[2])
            continue
        if last:
            yield last
        last = (start, end, kind)
    if last:
        yield last


_CLEAN_MAX_CHARS = 64  # identifiers, keys, enumerations: the short values that repeat from event to event
_CLEAN_ENTRIES = 8192
_known_clean: dict[tuple[str, bool], None] = {}  # insertion-ordered: the oldest is dropped first
_known_clean_lock = threading.Lock()


def _remember_clean(text: str, strict: bool) -> None:
    """Keep a short value found clean, so a repeat costs one lookup. Only values the scan found clean are
    kept (ids, keys, enumerations, which may reach outputs as they are); nothing it masks is ever held."""
    if len(text) > _CLEAN_MAX_CHARS:
        return
    with _known_clean_lock:
        if len(_known_clean) >= _CLEAN_ENTRIES:
            del _known_clean[next(iter(_known_clean))]
        _known_clean[(text, strict)] = None


def mask(text: str, *, strict: bool = False) -> tuple[str, tuple[str, ...]]:
    """``text`` with each personal-data span replaced by its placeholder, and the kinds found (for metrics);
    ``strict`` as in :func:`find`."""
    if (text, strict) in _known_clean:
        return text, ()
    out: list[str] = []
    kinds: set[str] = set()
    last = 0
    for start, end, kind in find(text, strict=strict):
        if start < last:
            continue
        out.append(text[last:start])
        out.append(PLACEHOLDERS[kind])
        kinds.add(kind)
        last = end
    if not kinds:
        _remember_clean(text, strict)
        return text, ()
    out.append(text[last:])
    return "".join(out), tuple(k for k in KINDS if k in kinds)


def alnum_of(text: str) -> str:
    """Letters and digits of ``text`` only, case-folded, digits in ASCII: a secret's readable core."""
    folded = (
        unicodedata.normalize("NFKC", text)
        .casefold()
        .translate(_DIGIT_MAP)
        .translate(_CN_TABLE)
    )
    return "".join(c for c in folded if c.isalnum())


def numbers_in(text: str) -> list[str]:
    """The digits of each number in ``text`` as the masker reads numbers (any script, separators dropped).

    >>> numbers_in("电话１３８ 1234—5678，订单 42，一三八一二")
    ['13812345678', '42', '13812']
    """
    return [
        "".join(c for c in run[0] if "0" <= c <= "9")
        for run in _RUN.finditer(shadow(text).text)
    ]
