"""`hw0 export` and `hw0 eval`: a run's ONNX model, and its accuracy on flipped images."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from hw0cli.choices import Backend, Device, OnnxModel, Provider, View
from hw0cli.cli.common import (
    DataDir,
    Json,
    OutDir,
    choice,
    data_dir_or_default,
    out_or_default,
    print_json,
    say,
    show,
    simple_table,
)

RunArg = Annotated[str | None, typer.Argument(
    help="Run id or .h5 file", show_default="the most recently finished run")]

ViewOpt = Annotated[list[str] | None, choice(View, "--view", help="Views to evaluate; "
                                             "repeatable", show_default="original")]
BackendOpt = Annotated[str, choice(Backend, help="auto: on a GPU the fastest of onnxruntime's "
                                   "GPU providers and torch, as measured there (cached); "
                                   "without one, onnxruntime on the CPU")]
ModelOpt = Annotated[str, choice(OnnxModel, "--model", help="ONNX model; int8 and fp16 are "
                                 "built on first use and their accuracy change vs fp32 is "
                                 "printed and stored")]
ProviderOpt = Annotated[str, choice(Provider, help="onnxruntime's execution provider")]
DeviceOpt = Annotated[str, choice(Device, help="The torch backend's device")]


def export(
    run: RunArg = None,
    fp16: Annotated[bool, typer.Option("--fp16", help="Also write an fp16 variant")] = False,
    int8: Annotated[bool, typer.Option("--int8", help="Also write an int8 (QDQ) variant")] = False,
    force: Annotated[bool, typer.Option(help="Export again even if a matching file exists")]
    = False,
    as_json: Json = False,
    data_dir: DataDir = None,
    out: OutDir = None,
) -> None:
    """Export a trained run to ONNX (uint8 pixels in, logits out) and validate it."""
    from hw0cli.export import ExportConfig, run_export
    res = run_export(ExportConfig(run=run, out=out_or_default(out),
                                  data_dir=data_dir_or_default(data_dir), fp16=fp16, int8=int8,
                                  force=force))
    if as_json:
        print_json({"run_id": res.run_id, "onnx": str(res.onnx_path), "reused": res.reused,
                    "max_abs_diff": res.max_abs_diff, "variants": res.variants})
        return
    for note in res.notes:
        say(f"({note})")
    verb = "reused (matches the run's weights)" if res.reused else "exported and validated"
    say(f"run [bold]{res.run_id}[/]: {res.onnx_path} {verb}; max |logit difference| vs torch "
        f"{res.max_abs_diff:.2e}")
    for name, v in res.variants.items():
        say(f"  {name}: {v['path']}, test accuracy {100 * v['accuracy']:.2f}% "
            f"({100 * v['accuracy_change']:+.2f} points vs fp32)")


def eval_cmd(
    run: RunArg = None,
    flip: Annotated[bool, typer.Option("--vflip", "--flip", help="Also evaluate upside-down "
                                       "images (the vflip view, as --augment vflip and --view "
                                       "vflip name it; --flip is the older spelling)")] = False,
    hflip: Annotated[bool, typer.Option("--hflip", help="Also evaluate mirrored images "
                                        "(horizontal flip)")] = False,
    view: ViewOpt = None,
    backend: BackendOpt = "auto",
    model: ModelOpt = "fp32",
    provider: ProviderOpt = "auto",
    device: DeviceOpt = "auto",
    batch_size: Annotated[int | None, typer.Option(
        help="Images per inference call", show_default="1000; --backend auto on a GPU times a "
        "few sizes")] = None,
    confusion: Annotated[bool, typer.Option("--confusion", help="Print confusion matrices")]
    = False,
    plot: Annotated[bool, typer.Option("--plot/--no-plot", help="Write the per-class PNG")]
    = True,
    as_json: Json = False,
    data_dir: DataDir = None,
    out: OutDir = None,
) -> None:
    """Test accuracy on original and flipped images, overall and per class (Problem 1)."""
    from hw0cli.evaluate import EvalConfig, requested_views, run_eval
    res = run_eval(EvalConfig(run=run, views=requested_views(view, flip, hflip),
                              backend=backend, model=model, provider=provider, device=device,
                              batch_size=batch_size, out=out_or_default(out),
                              data_dir=data_dir, plot=plot))
    if as_json:
        print_json({**res.to_json(), "plot": str(res.plot) if res.plot else None})
        return
    _print_eval_header(res, named=run is not None)
    show(simple_table("Test accuracy", ("view", "accuracy", "drop vs original"), [
        [v, f"{100 * m.accuracy:.2f}%", "-" if res.drop(v) is None
         else f"{100 * res.drop(v):+.2f} points"] for v, m in res.views.items()]))
    _print_per_class(res)
    if confusion:
        _print_confusion(res)
    if res.plot:
        say(f"plot: {res.plot}")
    from hw0cli.evaluate import result_group
    say(f"results stored under {result_group(res.model)}/<view>/ in {res.run_path}")


def _print_eval_header(res: Any, named: bool) -> None:
    if not named:
        say(f"(no run named: using the most recently finished run, {res.run_id})")
    for note in res.notes:
        warning = note.startswith("warning: ")
        say(f"[bold yellow]Warning:[/] {note.removeprefix('warning: ')}" if warning
            else f"({note})")
    model_txt = "" if res.model == "fp32" else f", model [bold]{res.model}[/]"
    say(f"run [bold]{res.run_id}[/], backend {res.backend}{model_txt}, provider "
        f"[bold]{res.provider}[/]: {res.n_images:,} images in {res.seconds:.2f} s "
        f"({res.images_per_s:,.0f} images/s; {res.backend}: {res.backend_reason})")
    if res.variant_info:
        vi = res.variant_info
        say(f"{res.model} model: test accuracy {vi['accuracy']:.2%} vs fp32 "
            f"{vi['fp32_accuracy']:.2%} ({vi['accuracy_change'] * 100:+.2f} points)")


def _print_per_class(res: Any) -> None:
    found = res.per_class_drops()
    if found is None:
        return
    k, drops, order = found
    others = [v for v in res.views if v != "original"]
    acc = {v: res.views[v].per_class_accuracy for v in ("original", *others)}
    show(simple_table(
        f"Per-class accuracy, sorted by drop ({k} vs original)",
        ("class", "original", *others, f"drop ({k})"),
        [[res.classes[i], *[f"{100 * acc[v][i]:.1f}%" for v in ("original", *others)],
          f"{100 * drops[i]:+.1f}"] for i in order], left=("class",)))


def _print_confusion(res: Any) -> None:
    for v, m in res.views.items():
        show(simple_table(
            f"Confusion matrix, {v} (rows: true class, columns: predicted)",
            ("", *[c[:5] for c in res.classes]),
            [[res.classes[i], *[str(int(n)) for n in row]] for i, row in enumerate(m.confusion)],
            left=("",)))
