"""Realistic event feeds (review, search, order, user_attributes) for demos, tests and benchmarks.

Pure generators, no Kafka: the CLI (`stream produce --demo`, `stream produce --reviews PATH`) publishes what they
yield. Users prefer a few categories, so the online clusters have a ground truth (`FeedEvent.label`) to be scored
against; a share of users falls silent early, so churn detection has something to find. Output is deterministic for
a seed (one `random.Random` drives everything, event time included) so tests and benchmarks are reproducible.
"""

from __future__ import annotations

import bisect
import csv
import json
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from itertools import accumulate
from pathlib import Path
from typing import TypeVar

KINDS = ("review", "search", "order", "user_attributes")
CATEGORIES = ("书籍", "平板", "手机", "水果", "洗发水", "热水器", "蒙牛", "衣服", "计算机", "酒店")

DEFAULT_START = datetime(2026, 1, 1, tzinfo=timezone.utc)
GAP_MS = 1000  # event i happens in [i * GAP_MS, (i + 1) * GAP_MS) ms after start: ordered without a sort
SILENT_AFTER = 0.4  # silent users produce nothing after this share of the feed's time span
PREFERRED_SHARE = 0.85  # share of a user's categorised events drawn from their preferred categories
_MIX = {"search": 0.45, "review": 0.35, "order": 0.20}
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class FeedEvent:
    """One event as published: `kind` picks the topic, `label` is the ground-truth category of its text."""

    kind: str
    event: dict
    label: str | None


@dataclass(frozen=True, slots=True)
class _Vocab:
    products: tuple[str, ...]
    aspects: tuple[str, ...]
    brands: tuple[str, ...]
    positive: tuple[str, ...]
    negative: tuple[str, ...]
    price: tuple[int, int]  # unit price range in CNY


def _v(products: str, aspects: str, brands: str, positive: str, negative: str, price: tuple[int, int]) -> _Vocab:
    return _Vocab(*(tuple(s.split()) for s in (products, aspects, brands, positive, negative)), price)


_VOCAB = {
    "书籍": _v("小说 绘本 教材 漫画 字典 传记 散文集 诗集 历史书 编程书 单词书 童书",
             "印刷 纸张 内容 排版 装帧 翻译 包装 插图 字体 情节", "人民文学 中信出版 商务印书馆 机械工业 O'Reilly 新华书店 企鹅",
             "内容很精彩 印刷清晰 孩子很喜欢 值得一读 正版无疑 讲得很透彻 一口气读完了",
             "疑似盗版 纸张发黄 缺了好几页 翻译太生硬 内容很空洞 封面压坏了", (15, 200)),
    "平板": _v("平板 平板电脑 iPad 学习平板 二合一平板 绘画平板 护眼平板 游戏平板 电子书阅读器",
             "屏幕 续航 系统 速度 音质 做工 手感 分辨率 充电 性价比", "Apple 华为 小米 联想 荣耀 三星 Kindle",
             "屏幕很清晰 运行流畅 孩子上网课很方便 续航很给力 看视频很爽 做工精致",
             "经常卡顿 充电发烫 屏幕有坏点 系统老是闪退 电池不耐用 触屏不灵敏", (999, 6999)),
    "手机": _v("手机 智能手机 老人机 5G手机 折叠屏手机 拍照手机 游戏手机 备用机",
             "拍照 信号 电池 屏幕 外观 运行速度 音质 系统 充电 发热", "Apple 华为 小米 OPPO vivo 荣耀 一加 三星 魅族",
             "拍照效果很棒 信号很稳定 运行很流畅 手感很好 充电超快 颜值很高",
             "信号很差 电池掉电快 发热严重 系统广告太多 屏幕有划痕 听筒有杂音", (999, 8999)),
    "水果": _v("苹果 橙子 猕猴桃 芒果 车厘子 榴莲 香蕉 葡萄 草莓 柚子 荔枝 火龙果",
             "口感 甜度 新鲜度 个头 水分 包装 果肉 外观 味道 分量", "佳沃 都乐 褚橙 百果园 Dole 新疆 赣南",
             "很新鲜 特别甜 个头很大 汁水很多 包装很严实 孩子抢着吃",
             "烂了好几个 一点都不甜 个头太小 放几天就坏了 分量不足 有股怪味", (20, 200)),
    "洗发水": _v("洗发水 护发素 洗发露 去屑洗发水 防脱洗发水 控油洗发水 洗护套装 发膜",
              "香味 去屑效果 泡沫 控油 包装 质地 柔顺度 味道 用量 效果", "海飞丝 潘婷 飘柔 清扬 沙宣 阿道夫 施华蔻 Head&Shoulders",
              "洗完头发很顺 香味很持久 去屑效果明显 泡沫丰富 不油腻 正品无疑",
              "洗完头发很干 味道太冲 头皮发痒 怀疑是假货 瓶子漏了 完全不去屑", (25, 150)),
    "热水器": _v("热水器 电热水器 燃气热水器 即热式热水器 储水式热水器 太阳能热水器 小厨宝 空气能热水器",
              "加热速度 温度 安装 售后 噪音 外观 水压 保温 耗电 操作", "海尔 美的 A.O.史密斯 万和 万家乐 林内 Haier",
              "加热很快 安装师傅很专业 水温稳定 很省电 噪音很小 洗澡很舒服",
              "安装费太贵 漏水了 加热太慢 水温忽冷忽热 售后不上门 显示屏坏了", (599, 4999)),
    "蒙牛": _v("纯牛奶 酸奶 特仑苏 真果粒 早餐奶 奶粉 冰淇淋 优益C 纯甄 未来星",
             "口感 味道 包装 日期 奶味 浓度 营养 价格 分量 保质期", "蒙牛 蒙牛官方 Mengniu",
             "奶味很浓 日期很新鲜 孩子每天都喝 口感醇厚 包装完好 物美价廉",
             "快过期了 盒子压扁了 有股怪味 喝完拉肚子 比超市还贵 有几盒漏了", (30, 150)),
    "衣服": _v("T恤 衬衫 连衣裙 牛仔裤 卫衣 羽绒服 外套 毛衣 运动裤 风衣 半身裙 羊毛衫",
             "面料 尺码 做工 颜色 版型 手感 质量 款式 线头 厚度", "优衣库 ZARA 太平鸟 森马 李宁 安踏 H&M 波司登",
             "版型很好看 面料很舒服 尺码很标准 颜色很正 穿着显瘦 做工精细",
             "严重色差 线头很多 洗一次就缩水 尺码偏小 起球严重 有异味", (49, 899)),
    "计算机": _v("笔记本 笔记本电脑 台式机 游戏本 轻薄本 一体机 显示器 主机 迷你主机 工作站",
              "散热 屏幕 键盘 性能 续航 做工 系统 风扇 接口 重量", "联想 ThinkPad 戴尔 华硕 惠普 Apple 宏碁 雷神 小米",
              "开机速度很快 散热不错 打游戏很流畅 键盘手感好 屏幕色彩很正 轻薄便携",
              "风扇噪音很大 蓝屏好几次 预装软件太多 屏幕漏光 键盘有松动 散热太差", (2999, 14999)),
    "酒店": _v("大床房 标准间 双床房 套房 商务房 亲子房 海景房 家庭房",
             "服务 卫生 早餐 位置 隔音 设施 床品 前台 环境 停车", "如家 汉庭 全季 亚朵 希尔顿 万豪 锦江 Hilton",
             "位置很方便 早餐很丰富 房间很干净 前台很热情 床很舒服 性价比很高",
             "隔音太差 卫生间有异味 前台态度差 早餐很难吃 设施很陈旧 床单不干净", (150, 1500)),
}
_GOOD, _BAD = "很好 不错 挺满意 没得说 超出预期 很棒".split(), "很差 一般般 太差了 不行 很失望 不满意".split()
_SERVICE = ("物流很快 客服很耐心 包装很用心 性价比很高 会回购的 五星好评 推荐购买".split(),
            "物流太慢 客服不理人 包装破损 不值这个价 再也不买了 退货很麻烦".split())  # indexed by not positive
_SHORT = ("好评 不错 满意 很好 推荐👍 赞".split(), "差评 一般 失望 太差".split())
_EMOJI = ("😊 👍 ❤️ 💯 🔥 🥰".split(), "😡 👎 😞 💔 🙄".split())
_OPENERS = ("{brand}{product}", "这个{product}", "{brand}的{product}", "第二次选{brand}了", "买了{product}")
_QUERIES = ("{brand}{product} 推荐", "{product} 多少钱", "{product}哪个牌子好", "{brand} {product}", "{product}",
            "便宜{product}", "{product}{aspect}怎么样", "{brand}官方旗舰店", "{product} 评测", "好用的{product}",
            "{brand}{product}价格", "{product} 2026新款")
_TRADITIONAL = str.maketrans("这东买质说发还们电机书价点实货级儿对个务头烦统热阳轻乐车钱门", "這東買質說發還們電機書價點實貨級兒對個務頭煩統熱陽輕樂車錢門")
_PII = ("有问题请联系{phone}", "售后电话{phone}", "发票请发到{email}", "加我微信{phone}")
_AGE_BANDS, _GENDERS = ("18-24", "25-34", "35-44", "45-54", "55+"), ("f", "m", "x")
_REGIONS = ("广东 浙江 江苏 北京 上海 四川 山东 河南 湖北 湖南 福建 河北 安徽 陕西 辽宁 重庆 天津 江西 广西 云南 山西 "
            "黑龙江 吉林 贵州 甘肃 内蒙古 新疆 海南 宁夏 青海 西藏").split()
_OCCUPATIONS = "学生 程序员 教师 医生 销售 设计师 自由职业 公务员 工程师 退休 财务 宝妈".split()

# (text, sentiment 1/0 or None) for a category: templates for the demo, real reviews for reviews_feed
ReviewSource = Callable[[random.Random, str], tuple[str, int | None]]


def _demo_review(rng: random.Random, category: str) -> tuple[str, int | None]:
    """A templated review: opener, 1–5 aspect/product/service clauses, sometimes emoji, traditional script or PII."""
    positive = rng.random() < 0.7
    if rng.random() < 0.06:
        return rng.choice(_SHORT[not positive]), int(positive)
    v = _VOCAB[category]
    clauses = [rng.choice(_OPENERS).format(brand=rng.choice(v.brands), product=rng.choice(v.products))]
    for _ in range(rng.randint(1, 5) if rng.random() < 0.85 else rng.randint(6, 12)):
        roll = rng.random()
        if roll < 0.4:
            clauses.append(rng.choice(v.aspects) + rng.choice(_GOOD if positive else _BAD))
        elif roll < 0.75:
            clauses.append(rng.choice(v.positive if positive else v.negative))
        else:
            clauses.append(rng.choice(_SERVICE[not positive]))
    clauses = list(dict.fromkeys(clauses))  # no repeated clause
    while len("，".join(clauses)) > 80:  # leaves room for PII and emoji within 120 characters
        clauses.pop()
    if rng.random() < 0.03:
        phone = "1" + rng.choice("3456789") + "".join(rng.choices("0123456789", k=9))
        email = f"{rng.choice(('zhang', 'li.na', 'wang88', 'chen_yu'))}{rng.randint(1, 999)}@" \
                f"{rng.choice(('qq.com', '163.com', 'example.com'))}"
        clauses.append(rng.choice(_PII).format(phone=phone, email=email))
    text = "，".join(clauses) + rng.choice("。！~")
    if rng.random() < 0.25:
        text += rng.choice(_EMOJI[not positive]) * rng.randint(1, 3)
    if rng.random() < 0.05:
        text = text.translate(_TRADITIONAL)
    return text, int(positive)


def _query(rng: random.Random, category: str) -> str:
    """A 2–15 character search query for the category (falls back to a bare product noun when too long)."""
    v = _VOCAB[category]
    for _ in range(3):
        q = rng.choice(_QUERIES).format(brand=rng.choice(v.brands), product=rng.choice(v.products),
                                        aspect=rng.choice(v.aspects))
        if 2 <= len(q) <= 15:
            return q
    return rng.choice(v.products)


def _amount(rng: random.Random, category: str, items: int) -> str:
    """Unit price log-uniform in the category's range with shop-like cents, times items, as a 2-decimal string."""
    lo, hi = _VOCAB[category].price
    yuan = int(lo * (hi / lo) ** rng.random())
    cents = (yuan * 100 + rng.choice((0, 0, 90, 99, rng.randrange(100)))) * items
    return f"{cents // 100}.{cents % 100:02d}"


def _rfc3339(dt: datetime) -> str:
    return f"{dt:%Y-%m-%dT%H:%M:%S}.{dt.microsecond // 1000:03d}Z"


@dataclass(frozen=True, slots=True)
class _User:
    user_id: str
    preferred: tuple[str, ...]
    cum_weights: tuple[float, ...]

    def category(self, rng: random.Random, categories: Sequence[str]) -> str:
        if rng.random() < PREFERRED_SHARE:
            return self.preferred[bisect.bisect(self.cum_weights, rng.random() * self.cum_weights[-1])]
        return rng.choice(categories)


def _picker(rng: random.Random, population: Sequence[_T], weights: Sequence[float]) -> Callable[[], _T]:
    """Weighted choice by bisection: O(log n) per draw for a population drawn from millions of times."""
    cum = list(accumulate(weights))
    return lambda: population[bisect.bisect(cum, rng.random() * cum[-1])]


def _feed(n_users: int, n_events: int, seed: int, start: datetime | None, silent_fraction: float,
          kinds: Sequence[str], categories: Sequence[str], review: ReviewSource, gap_ms: int) -> Iterator[FeedEvent]:
    """Validate eagerly (errors surface at the call, not at the first `next`), then return the lazy generator."""
    unknown = sorted(set(kinds) - set(KINDS))
    if not kinds or unknown:
        raise ValueError(f"kinds must be a non-empty subset of {KINDS}, got unknown {unknown}")
    if n_users < 1 or n_events < n_users:
        raise ValueError(f"need 1 <= n_users <= n_events (every user appears), got {n_users=} {n_events=}")
    if set(kinds) == {"user_attributes"} and n_events != n_users:
        raise ValueError("with kinds=('user_attributes',) there is one event per user: n_events must equal n_users")
    if gap_ms < 1:
        raise ValueError(f"gap_ms must be at least 1, got {gap_ms}")
    if not 0.0 <= silent_fraction < 1.0:
        raise ValueError(f"silent_fraction must be in [0, 1), got {silent_fraction}")
    n_silent = min(n_users - 1, round(silent_fraction * n_users))
    if n_silent > SILENT_AFTER * (n_events - 1):
        raise ValueError(f"{n_silent} silent users cannot all appear in the first {SILENT_AFTER:.0%} "
                         f"of {n_events} events")
    if start is None:
        start = DEFAULT_START
    base = start.replace(tzinfo=timezone.utc) if start.tzinfo is None else start.astimezone(timezone.utc)
    return _generate(n_users, n_events, seed, base, n_silent, tuple(kinds), tuple(categories), review, gap_ms)


def _generate(n_users: int, n_events: int, seed: int, base: datetime, n_silent: int, kinds: tuple[str, ...],
              categories: tuple[str, ...], review: ReviewSource, gap_ms: int) -> Iterator[FeedEvent]:
    rng = random.Random(seed)
    users = []
    for i in range(1, n_users + 1):
        preferred = tuple(rng.sample(categories, min(len(categories), rng.choice((1, 2, 2, 3)))))
        weights = accumulate(rng.gammavariate(1.0, 1.0) for _ in preferred)  # Dirichlet(1, ..., 1), unnormalised
        users.append(_User(f"u{i:04d}", preferred, tuple(weights)))
    activity = [rng.lognormvariate(0.0, 0.75) for _ in users]  # a few heavy users, many light ones
    silent = set(rng.sample(range(n_users), n_silent))
    # Each user's first event (attributes, or any activity) comes early; silent users first, so they fit before
    # the cut-off that follows.
    intro = sorted(rng.sample(range(n_users), n_users), key=lambda u: u not in silent)
    anyone = _picker(rng, range(n_users), activity)
    active = [u for u in range(n_users) if u not in silent]
    only_active = _picker(rng, active, [activity[u] for u in active])
    act_kinds = [k for k in _MIX if k in kinds]
    pick_kind = _picker(rng, act_kinds, [_MIX[k] for k in act_kinds])  # never drawn when act_kinds is empty
    with_attributes = "user_attributes" in kinds
    for i in range(n_events):
        offset_ms = i * gap_ms + rng.randrange(gap_ms) if i else 0
        ts = _rfc3339(base + timedelta(milliseconds=offset_ms))
        if i < n_users:
            u = intro[i]
        else:  # slot i ends by (i + 1) * gap_ms, within SILENT_AFTER of the span, which is at least (n - 1) * GAP_MS
            u = anyone() if (i + 1) <= SILENT_AFTER * (n_events - 1) else only_active()
        user = users[u]
        kind = "user_attributes" if with_attributes and i < n_users else pick_kind()
        event = {"event_id": f"{kind}-{seed}-{i}", "user_id": user.user_id, "ts": ts}
        label = None
        if kind == "user_attributes":
            for key, choices, p in (("age_band", _AGE_BANDS, 0.85), ("gender", _GENDERS, 0.8),
                                    ("region", _REGIONS, 0.9), ("occupation", _OCCUPATIONS, 0.6)):
                if rng.random() < p:
                    event[key] = rng.choice(choices)
            if rng.random() < 0.9:
                event["registered_at"] = _rfc3339(base - timedelta(days=rng.randint(1, 2000),
                                                                   milliseconds=rng.randrange(86_400_000)))
        else:
            category = user.category(rng, categories)
            if kind == "review":
                text, sentiment = review(rng, category)
                rating = None
                if sentiment is not None and rng.random() >= 0.1:
                    rating = rng.randint(4, 5) if sentiment else rng.randint(1, 2)
                event |= {"item_id": f"sku-{CATEGORIES.index(category)}-{rng.randrange(500):03d}",
                          "category": None if rng.random() < 0.1 else category, "rating": rating, "text": text}
                label = category
            elif kind == "search":
                event["query"] = _query(rng, category)
                label = category
            else:
                items = rng.choices((1, 2, 3, 4, 5), weights=(60, 20, 10, 6, 4))[0]
                event |= {"order_id": f"o-{seed}-{i}", "amount": _amount(rng, category, items), "currency": "CNY",
                          "category": category, "items": items}
        yield FeedEvent(kind, event, label)


def demo_feed(n_users: int, n_events: int, *, seed: int = 0, start: datetime | None = None,
              silent_fraction: float = 0.0, kinds: Sequence[str] = KINDS, gap_ms: int = GAP_MS) -> Iterator[FeedEvent]:
    """A self-contained feed with templated Chinese reviews and queries: no data file needed for a demo or test.

    Exactly `n_events` events from exactly `n_users` users, in non-decreasing event time from `start`
    (default 2026-01-01T00:00:00Z), one per `gap_ms` on average. Raises ValueError on impossible arguments.
    """
    return _feed(n_users, n_events, seed, start, silent_fraction, kinds, CATEGORIES, _demo_review, gap_ms)


def reviews_feed(path: str | Path, n_users: int, n_events: int, *, seed: int = 0, start: datetime | None = None,
                 silent_fraction: float = 0.0, kinds: Sequence[str] = KINDS, gap_ms: int = GAP_MS) -> Iterator[FeedEvent]:
    """Like `demo_feed`, but reviews are real labelled texts from the CSV at `path` (read once, at the call).

    Users prefer categories present in the file; rating follows the sentiment label (1 → 4–5, 0 → 1–2).
    """
    pool: dict[str, list[tuple[str, int | None]]] = {}
    for text, label, sentiment in load_labelled_reviews(path):
        pool.setdefault(label, []).append((text, sentiment))
    if not pool:
        raise ValueError(f"{path}: no reviews")
    unknown = sorted(set(pool) - set(CATEGORIES))
    if unknown:
        raise ValueError(f"{path}: categories without search/order templates: {unknown} (known: {CATEGORIES})")
    categories = tuple(c for c in CATEGORIES if c in pool)
    return _feed(n_users, n_events, seed, start, silent_fraction, kinds, categories,
                 lambda rng, category: rng.choice(pool[category]), gap_ms)


def load_labelled_reviews(path: str | Path, text_column: str = "review", label_column: str = "cat",
                          sentiment_column: str | None = "label") -> list[tuple[str, str, int | None]]:
    """(text, category label, sentiment) rows of a labelled review CSV; rows with empty text or label are skipped.

    Reads UTF-8 with or without BOM; a stray BOM at the start of a text is stripped too.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"labelled review file not found: {path}")
    rows = []
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        wanted = [c for c in (text_column, label_column, sentiment_column) if c is not None]
        missing = [c for c in wanted if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing}; header is {reader.fieldnames}")
        for row in reader:
            text, label = (row[text_column] or "").lstrip("\ufeff").strip(), (row[label_column] or "").strip()
            if not text or not label:
                continue
            raw = (row[sentiment_column] or "").strip() if sentiment_column else ""
            try:
                sentiment = int(raw) if raw else None
            except ValueError:
                raise ValueError(f"{path}:{reader.line_num}: {sentiment_column} is not an integer: {raw!r}") from None
            rows.append((text, label, sentiment))
    return rows


def write_jsonl(events: Iterable[FeedEvent], path: str | Path) -> int:
    """Write one `{"kind", "event"[, "label"]}` object per line (UTF-8, unescaped Chinese); returns the count."""
    n = 0
    with Path(path).open("w", encoding="utf-8") as f:
        for e in events:
            line = {"kind": e.kind, "event": e.event} | ({"label": e.label} if e.label is not None else {})
            f.write(json.dumps(line, ensure_ascii=False) + "\n")
            n += 1
    return n


def read_jsonl(path: str | Path) -> Iterator[FeedEvent]:
    """Replay a feed written by `write_jsonl`; blank lines are skipped, a bad line is a ValueError naming it."""
    with Path(path).open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{lineno}: not JSON: {exc}") from None
            if not (isinstance(obj, dict) and obj.get("kind") in KINDS and isinstance(obj.get("event"), dict)
                    and isinstance(obj.get("label"), str | None)):
                raise ValueError(f"{path}:{lineno}: expected {{\"kind\": one of {KINDS}, \"event\": {{...}}, "
                                 f"\"label\": str (optional)}}")
            yield FeedEvent(obj["kind"], obj["event"], obj.get("label"))
