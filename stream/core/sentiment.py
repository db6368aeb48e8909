"""Review sentiment in [-1, 1]: the star rating when given, else a lexicon signal from the text.

A rating is the customer's own judgement, so it wins. Without one, counting positive and
negative words (after jieba, with negated forms listed explicitly because jieba keeps
不好/不错 as single tokens) is a transparent signal that needs no model.
"""

from __future__ import annotations

from collections.abc import Sequence

POSITIVE = frozenset(
    "好 很好 不错 满意 喜欢 推荐 好用 好吃 好看 舒服 方便 快 很快 值 值得 超值 划算 实惠 便宜 精美 漂亮 清晰 流畅 耐用 "
    "结实 正品 新鲜 甜 香 干净 热情 耐心 周到 专业 完美 惊喜 赞 棒 优秀 给力 喜爱 满分 好评 回购 五星 靠谱 省心 "
    "清爽 柔顺 细腻 稳定 安静 大气 合身 贴心 感谢 开心 愉快 放心 物美价廉 性价比 高效 精彩 经典 有用 实用".split()
)
NEGATIVE = frozenset(
    "差 很差 太差 不好 不行 不满意 失望 垃圾 坑 骗 假 假货 慢 太慢 贵 太贵 坏 坏了 破 破损 烂 脏 臭 难吃 难用 难看 "
    "卡 卡顿 发热 发烫 死机 掉线 异味 退货 退款 投诉 差评 后悔 郁闷 生气 糟糕 一般般 不值 不推荐 粗糙 模糊 漏水 "
    "噪音 吵 冷漠 敷衍 态度差 欺骗 次品 瑕疵 掉色 起球 缩水 过期 腐烂 不新鲜 不舒服 麻烦 恶心 无语 上当 劣质".split()
)


def rating_sentiment(rating: int) -> float:
    """1..5 stars onto [-1, 1]: 3 stars is neutral.

    >>> rating_sentiment(5), rating_sentiment(3), rating_sentiment(1)
    (1.0, 0.0, -1.0)
    """
    return (rating - 3) / 2


def text_sentiment(tokens: Sequence[str]) -> float | None:
    """(positive - negative) / (positive + negative) over lexicon hits; None when no word is known.

    >>> text_sentiment(["电池", "耐用", "物流", "很快"]), text_sentiment(["屏幕", "卡顿", "失望"])
    (1.0, -1.0)
    >>> text_sentiment(["手机"]) is None
    True
    """
    pos = sum(t in POSITIVE for t in tokens)
    neg = sum(t in NEGATIVE for t in tokens)
    return None if pos + neg == 0 else (pos - neg) / (pos + neg)


def review_sentiment(rating: int | None, tokens: Sequence[str]) -> float | None:
    """The sentiment of one review, or None when neither a rating nor a known word says anything."""
    return rating_sentiment(rating) if rating is not None else text_sentiment(tokens)
