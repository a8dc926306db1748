"""Write a QA report (metrics.json + report.html) for a model, compare it with production, gate promotion.

Examples::

    callintent evaluate --model candidate --data data/generated/corpus.jsonl --compare production --out reports/v3
    callintent evaluate --model v3 --data calls.csv --split all --export-errors errors.csv --out reports/v3
    callintent evaluate --model candidate --data corpus.jsonl --robustness --robustness-n 30 --out reports/v3
    callintent evaluate --model production --data test_asr.jsonl --out reports/asr   # + accuracy over time
    callintent evaluate review-import reports/v3/errors.csv --out corrections.jsonl
    callintent evaluate select-for-labeling calls.jsonl --model production --n 50 --out to_label.csv \
        --exclude corrections.jsonl

When the model is a registry version, the gate verdict is also written to
``<version>/evaluation/gate.json`` (uploaded there for an ``s3://`` registry), which ``callintent models promote`` requires (the last
evaluation decides; ``--no-record`` keeps exploratory runs on other data from changing it). The exit code is
0 even when the gate fails (the report is the product) unless ``--fail-on-gate`` is given.
"""

from __future__ import annotations

import argparse
import logging
from typing import TYPE_CHECKING

from callintent.errors import UserError
from evaluation.config import SPLIT_CHOICES, VARIANT_CHOICES

if TYPE_CHECKING:
    from evaluation.evalset import EvalSet
    from evaluation.evaluate import ModelRef
    from evaluation.timecuts import TimecutResult
    from models.registry import Registry
    from serving.policy import DecisionPolicy

logger = logging.getLogger(__name__)

#: Exit code of ``--fail-on-gate`` when the gate fails (2 is a usage error).
GATE_FAILED_EXIT = 1

REVIEW_IMPORT = "review-import"
SELECT_FOR_LABELING = "select-for-labeling"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", nargs="*", metavar="MODEL | review-import FILE | select-for-labeling EXPORT",
                        help="the model to evaluate (same as --model); 'review-import FILE' to turn a "
                             "reviewed error export into a corrections file (with --out FILE.jsonl); or "
                             "'select-for-labeling EXPORT.jsonl' to pick the logged calls (from 'callintent calls "
                             "export') QA should label next (with --model, --n, --out FILE.csv)")
    parser.add_argument("--model", default=None, metavar="REF",
                        help="production, candidate, v3, intent/v3 or an artifact directory")
    parser.add_argument("--data", action="append", default=None, metavar="FILE",
                        help="labeled .jsonl/.csv/.parquet file (repeatable)")
    parser.add_argument("--split", choices=SPLIT_CHOICES, default="auto",
                        help="rows to evaluate (default auto: the test split when the data has one, else all)")
    parser.add_argument("--corrections", action="append", default=None, metavar="FILE",
                        help="label corrections applied to --data before evaluating (repeatable)")
    parser.add_argument("--variant", choices=VARIANT_CHOICES, default="int8", help="ONNX graph (default int8)")
    parser.add_argument("--compare", default=None, metavar="REF",
                        help="also evaluate this model (e.g. production) on the same calls, side by side")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="report folder (metrics.json, report.html); for review-import the .jsonl to write")
    parser.add_argument("--gate", default=None, metavar="YAML",
                        help="promotion gate policy (default evaluation/configs/gate.yaml)")
    parser.add_argument("--no-record", action="store_true",
                        help="exploratory run (other data, ASR text, a what-if policy): write the report "
                             "but leave the version's recorded gate verdict untouched")
    parser.add_argument("--fail-on-gate", action="store_true",
                        help=f"exit {GATE_FAILED_EXIT} when the gate fails")
    parser.add_argument("--export-errors", default=None, metavar="FILE",
                        help="write the misclassified calls to FILE (.csv or .jsonl) for label review")
    parser.add_argument("--two-channel", action="store_true",
                        help="score calls whose speakers are known as a two-channel live call gives them to each "
                             "model: speaker-tagged text (agent: … caller: …) for a model trained with "
                             "speaker_tags, the caller's words for any other (default: the text as labeled)")
    parser.add_argument("--robustness", action="store_true",
                        help="also render a sample as phone calls (voices + telephone channel) and score it three "
                             "ways: clean text, one-shot ASR, and a live stream through the serving path; adds WER "
                             "by condition and time to decision (seconds per call: the stream re-decodes every second of audio)")
    parser.add_argument("--robustness-n", type=int, default=30, metavar="N", help="calls in that sample (30)")
    parser.add_argument("--asr-cache", default=".cache/asr", metavar="DIR",
                        help="ASR cache folder of the one-shot transcripts (.cache/asr)")
    parser.add_argument("--timecuts", action=argparse.BooleanOptionalAction, default=None,
                        help="score each call's prefix at 5/10/15/20/30 s and replay the serving decision policy "
                             "(default: on when the data has word timings, 'words')")
    parser.add_argument("--policy", default=None, metavar="YAML",
                        help="decision policy replayed by --timecuts and --robustness "
                             "(default serving/configs/policy.yaml)")
    parser.add_argument("--bootstrap", type=int, default=1000, metavar="N",
                        help="bootstrap resamples for confidence intervals (1000; 0 = none)")
    parser.add_argument("--latency-iterations", type=int, default=10, metavar="N",
                        help="timed predict calls per batch size (10; 0 = skip)")
    parser.add_argument("--seed", type=int, default=0, help="seed of bootstrap and samples (0)")
    parser.add_argument("--n", type=int, default=None, metavar="N",
                        help="select-for-labeling: calls in the batch (50)")
    parser.add_argument("--exclude", action="append", default=None, metavar="FILE",
                        help="select-for-labeling: skip the call_ids of this corrections .jsonl or earlier "
                             "review file (repeatable)")
    parser.add_argument("--max-similarity", type=float, default=None, metavar="X",
                        help="select-for-labeling: never two calls in one batch whose transcripts' TF-IDF cosine "
                             "is above X (0.7)")
    parser.add_argument("--diversity-weight", type=float, default=None, metavar="W",
                        help="select-for-labeling: rank penalty per unit of similarity to a call already "
                             "chosen (0.3; 0 = uncertainty order only)")
    parser.add_argument("--registry", default=None, metavar="DIR|s3://BUCKET/PREFIX",
                        help="registry root (default: $CALLINTENT_REGISTRY or models/registry; an s3:// "
                             "registry uses $AWS_ENDPOINT_URL for S3-compatible stores)")


def run(args: argparse.Namespace) -> int:
    if args.target and args.target[0] == REVIEW_IMPORT:
        return _review_import(args)
    if args.target and args.target[0] == SELECT_FOR_LABELING:
        return _select_for_labeling(args)
    if len(args.target) > 1:
        raise UserError(f"one model at a time, got {' '.join(args.target)}")
    ref = args.target[0] if args.target else args.model
    if args.target and args.model and args.model != args.target[0]:
        raise UserError(f"two models given: {args.target[0]!r} and --model {args.model!r}")
    if not ref:
        raise UserError("which model? give --model production|candidate|<version>|DIR")
    if not args.data:
        raise UserError("no evaluation data: give --data FILE (labeled .jsonl/.csv/.parquet)")
    if not args.out:
        raise UserError("where to? give --out DIR for metrics.json and report.html")
    return _evaluate(args, ref)


def _evaluate(args: argparse.Namespace, ref: str) -> int:
    from evaluation.compare import compare
    from evaluation.config import EvalConfig, load_gate_policy
    from evaluation.evalset import load_eval_set
    from evaluation.evaluate import evaluate_model, resolve_model
    from evaluation.gate import GateMetrics, apply_gate, write_gate
    from evaluation.report import metrics_document, write_report
    from models.registry import Registry

    try:
        config = EvalConfig(variant=args.variant, split=args.split, bootstrap_samples=args.bootstrap,
                            seed=args.seed, latency_iterations=args.latency_iterations)
    except ValueError as e:
        raise UserError(f"bad option: {e}") from None
    policy = load_gate_policy(args.gate)
    registry = Registry(args.registry)
    model = resolve_model(ref, registry)
    baseline_model = resolve_model(args.compare, registry) if args.compare else None
    if args.two_channel and args.robustness:
        raise UserError("--robustness speaks the labeled transcripts: run it without --two-channel")
    eval_sets: dict[str, EvalSet] = {}

    def calls_for(m: ModelRef) -> EvalSet:  # each model reads a two-channel call the way serving gives it to it
        form = ("tagged" if m.meta.speaker_tags else "caller") if args.two_channel else "plain"
        if form not in eval_sets:
            eval_sets[form] = load_eval_set(args.data, split=config.split, corrections=args.corrections,
                                            text_form=form)
        return eval_sets[form]

    eval_set = calls_for(model)
    evaluation = evaluate_model(model, eval_set, config)
    comparison = None
    if baseline_model is not None:
        baseline = evaluate_model(baseline_model, calls_for(baseline_model), config)
        comparison = compare(evaluation, baseline)
    gate = apply_gate(
        policy, GateMetrics.from_evaluation(evaluation),
        GateMetrics.from_evaluation(comparison.baseline) if comparison else None,
        compared_to=baseline_model.model_id if baseline_model else None,
        uncompared_production=None if comparison else _uncompared_production(registry, model),
    )
    robustness = None
    if args.robustness:
        from evaluation.robustness import RobustnessConfig, robustness_check
        from models.predictor import IntentPredictor

        try:
            rconfig = RobustnessConfig(n=args.robustness_n, seed=args.seed, cache_dir=args.asr_cache)
        except ValueError as e:
            raise UserError(f"bad option: {e}") from None
        predictor = IntentPredictor.load(model.directory, variant=config.variant)
        robustness = robustness_check(predictor, eval_set, _decision_policy(args, model), rconfig)

    timecuts = None
    if args.timecuts or (args.timecuts is None and eval_set.has_timings):
        timecuts = _timecuts(args, model, eval_set, config.variant)

    files = write_report(args.out, evaluation, comparison=comparison, gate=gate, gate_policy=policy,
                         robustness=robustness, timecuts=timecuts, gate_source=args.gate or "")
    gate_location = None
    if model.registry_version is not None and not args.no_record:
        gate_file = write_gate(model.directory, gate, policy=policy,
                               metrics=metrics_document(evaluation, comparison=comparison, gate=gate,
                                                        robustness=robustness, timecuts=timecuts),
                               report_dir=files.directory)
        # In place for a local registry; uploaded from the verified cache for an object store.
        gate_location = registry.record_evaluation(model.registry_version, gate_file.parent)
    if args.export_errors:
        from evaluation.review import export_errors

        path = export_errors(evaluation, args.export_errors)
        print(f"wrote {len(evaluation.error_indices)} misclassified calls to {path}")

    c = evaluation.classes
    print(f"{model.model_id} on {len(eval_set)} calls ({eval_set.split}): accuracy {c.accuracy:.3f}, "
          f"macro-F1 {c.macro_f1:.3f}, buying recall {_fmt(c.of('buying').recall)}, "
          f"ECE {evaluation.calibration.ece:.3f}")
    if comparison is not None:
        print(f"vs {comparison.baseline.model.model_id}: macro-F1 {comparison.baseline.classes.macro_f1:.3f}; "
              f"{len(comparison.flips)} calls changed ({comparison.count('fixed')} fixed, "
              f"{comparison.count('broken')} broken)")
    if robustness is not None:
        from evaluation.robustness import summary_lines

        print("\n".join(summary_lines(robustness)))
    if timecuts is not None:
        cuts = ", ".join(f"{c.seconds:g} s {c.macro_f1:.3f}" for c in timecuts.cutoffs)
        t = timecuts.summary
        median = "n/a" if t.median_buying_seconds is None else f"{t.median_buying_seconds:g} s"
        print(f"over time ({timecuts.n} calls, {timecuts.timing_source} timings): macro-F1 {cuts}")
        print(f"decisions: median {median} on buying calls; {t.early} early ({t.early_wrong} wrong, "
              f"{_fmt(t.early_wrong_rate)}); {t.abstained} undetermined")
    print(f"gate: {'PASS' if gate.passed else 'FAIL'}"
          + (f" (compared with {gate.compared_to})" if gate.compared_to else ""))
    for reason in gate.reasons:
        print(f"  - {reason}")
    if model.registry_version is None:
        print("gate not recorded: the model is not a registry version")
    elif args.no_record:
        print(f"gate not recorded (--no-record): {model.directory}/evaluation/gate.json is unchanged")
    else:
        print(f"gate recorded in {gate_location}")
    print(f"report: {files.html}")
    print(f"metrics: {files.metrics}")
    if args.fail_on_gate and not gate.passed:
        return GATE_FAILED_EXIT
    return 0


def _timecuts(args: argparse.Namespace, model: ModelRef, eval_set: EvalSet, variant: str) -> TimecutResult:
    """Accuracy over time and the decision replay (``--timecuts``); the policy is serving's, read-only."""
    from evaluation.timecuts import evaluate_timecuts
    from models.predictor import IntentPredictor

    if not eval_set.has_timings:
        raise UserError(f"--timecuts needs word timings: no row of {', '.join(eval_set.files)} has 'words' "
                        "(render text with 'callintent data render-asr', or transcribe audio with "
                        "'callintent data transcribe')")
    predictor = IntentPredictor.load(model.directory, variant=variant)
    return evaluate_timecuts(predictor, eval_set, _decision_policy(args, model), model_id=model.model_id)


def _decision_policy(args: argparse.Namespace, model: ModelRef) -> DecisionPolicy:
    """The serving decision policy (``--policy``) as the live service would run it with ``model``."""
    from serving.policy import DecisionPolicy

    # Abstain as serving would with this model: the artifact's margin, unless the policy overrides it.
    return DecisionPolicy.from_yaml(args.policy,  # ConfigError (a UserError) names the file and key
                                    model_abstain_margin=model.meta.abstain_margin)


def _uncompared_production(registry: Registry, model: ModelRef) -> str | None:
    """The production version when it exists and is not ``model`` itself (None otherwise)."""
    from models.registry import RegistryError

    if model.registry_version is None:
        return None
    name = model.registry_version.split("/")[0]
    try:
        production = registry.show("production", name=name).ref
    except RegistryError:
        return None
    return None if production == model.registry_version else production


def _review_import(args: argparse.Namespace) -> int:
    from evaluation.review import corrections_from_review, write_corrections

    files = args.target[1:]
    if not files:
        raise UserError("review-import needs the reviewed file: callintent evaluate review-import errors.csv "
                        "--out corrections.jsonl")
    if not args.out:
        raise UserError("review-import needs --out FILE.jsonl for the corrections")
    rows = []
    for name in files:
        rows += corrections_from_review(name)
    seen: dict[str, int] = {}
    for row in rows:
        seen[row["call_id"]] = seen.get(row["call_id"], 0) + 1
    twice = sorted(k for k, n in seen.items() if n > 1)
    if twice:
        raise UserError(f"call_id {twice[0]!r} is corrected in more than one review file")
    path = write_corrections(rows, args.out)
    print(f"wrote {len(rows)} corrections to {path}")
    print(f"check them: callintent data validate DATA --corrections {path} "
          "(training takes the same file as its corrections)")
    return 0


def _select_for_labeling(args: argparse.Namespace) -> int:
    from data.call_log import read_call_log_export
    from evaluation.evaluate import resolve_model
    from evaluation.labeling import SelectionConfig, read_excluded_ids, select_for_labeling, write_labeling_file
    from models.predictor import IntentPredictor
    from models.registry import Registry

    files = args.target[1:]
    usage = (f"callintent evaluate {SELECT_FOR_LABELING} calls.jsonl --model production --n 50 "
             "--out to_label.csv")
    if not files:
        raise UserError(f"{SELECT_FOR_LABELING} needs a call-log export (callintent calls export): {usage}")
    if not args.model:
        raise UserError(f"{SELECT_FOR_LABELING} needs the model to score with: --model production ({usage})")
    if not args.out:
        raise UserError(f"{SELECT_FOR_LABELING} needs --out FILE.csv (or .jsonl) for the calls to label")
    defaults = SelectionConfig()
    try:
        config = SelectionConfig(
            n=defaults.n if args.n is None else args.n,
            max_similarity=defaults.max_similarity if args.max_similarity is None else args.max_similarity,
            diversity_weight=defaults.diversity_weight if args.diversity_weight is None else args.diversity_weight)
    except ValueError as e:
        raise UserError(f"bad option: {e}") from None
    if not args.out.lower().endswith((".csv", ".jsonl")):
        raise UserError(f"{args.out}: the batch is written as .csv or .jsonl (the review-file format)")
    calls = read_call_log_export(files)  # before the model loads: a bad export fails fast
    if not calls:
        raise UserError(f"{', '.join(files)}: the export holds no calls (export some with 'callintent calls export')")
    excluded = read_excluded_ids(args.exclude or ())
    model = resolve_model(args.model, Registry(args.registry))
    predictor = IntentPredictor.load(model.directory, variant=args.variant)
    selection = select_for_labeling(calls, predictor, config, exclude=excluded)
    path = write_labeling_file(selection, args.out)
    chosen = selection.chosen
    print(f"chose {len(chosen)} of {selection.candidates} unlabeled calls for labeling, scored by "
          f"{selection.model_id} ({selection.qa_labeled} already QA-labeled, {selection.excluded} excluded, "
          f"{selection.near_duplicates} passed over as near-duplicates of a chosen or labeled call)")
    if chosen:
        print(f"margin between the top two classes: {chosen[0].margin:.3f} (first) to "
              f"{max(c.margin for c in chosen):.3f} (widest)")
    print(f"wrote {path}: QA fills corrected_label on every row (the predicted class too, when it is right), then "
          f"callintent evaluate review-import {path} --out corrections.jsonl")
    return 0


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
