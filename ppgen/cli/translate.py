"""``ppgen translate``: translate images with a saved translation model into a picture (and .npy).

The picture shows the inputs beside their translations: rows of inputs, each followed by the
row of their translations into ``--to``.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from ppgen.cli import options, runs
from ppgen.cli.checks import UsageError, check_output, count, refuse_inputs

#: what ``ppgen translate --out`` can draw into
_IMAGE_SUFFIXES = (".png", ".pdf", ".svg", ".jpg")
#: images per row of the picture
_PER_ROW = 8


def add_parser(sub) -> None:
    p = sub.add_parser(
        "translate",
        help="translate images into another domain with a saved translation model",
        description="Translate images with a model written by `ppgen fit cyclegan|stargan`; "
        "writes a PNG of the inputs beside their translations (and optionally .npy).",
    )
    p.add_argument("dir", help="folder written by `ppgen fit` (or a model.pt file)")
    p.add_argument("--to", required=True, metavar="DOMAIN", help="the target domain (a name "
                   "the model was trained with, or its index)")
    p.add_argument("--data", default=None, help="images in [0, 1] to translate: .npy/.csv or a "
                   "folder of PNGs (default: the test digits of --from, for a model trained "
                   "on the digit domains)")
    p.add_argument("--from", dest="source", default=None, metavar="DOMAIN",
                   help="the digit domain of the default images (default: the first domain "
                   "other than --to)")
    p.add_argument("-n", "--num-images", type=count(1), default=16,
                   help="images to translate (default 16; the first ones of --data)")
    p.add_argument("--out", default=None, help="PNG (or .pdf/.svg/.jpg) path (default "
                   "DIR/translations.png)")
    p.add_argument("--npy", default=None, help="also save the translations to this .npy file")
    options.add_common(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from ppgen.devices import resolve_device
    from ppgen.models.translation import TranslationModel

    out = Path(args.out) if args.out else runs.run_folder(args.dir) / "translations.png"
    npy = Path(args.npy) if args.npy else None
    check_output(out, "--out", _IMAGE_SUFFIXES)
    if npy is not None:
        check_output(npy, "--npy", (".npy",))
    refuse_inputs([out, npy], [runs.model_file(args.dir), args.data])
    model, extra = runs.load_run(args.dir)
    if not isinstance(model, TranslationModel):
        raise UsageError(f"{model.name} is not a translation model: ppgen translate takes a run "
                         "of cyclegan or stargan (ppgen sample draws from the others)")
    target = _domain(model, args.to, "--to")
    x = _inputs(model, extra, args, target)[: args.num_images]
    model.to(resolve_device(args.device)).eval()
    torch.manual_seed(args.seed)
    translated = model.translate(x, target).cpu()
    _plot(x, translated, model, model.domains[target], out)
    if npy is not None:
        runs.atomic(npy, lambda f: np.save(f, translated.numpy()))
    print(f"translated {len(x)} images into {model.domains[target]}: {out}"
          + (f" and {args.npy}" if args.npy else ""))
    return 0


def _domain(model, given: str, flag: str) -> int:
    """The index of a domain named (or numbered) on the command line."""
    from ppgen.errors import ModelError

    value = int(given) if given.isdigit() else given
    try:
        return model.domain_index(value)
    except ModelError as err:
        raise UsageError(f"{flag} {given}: {err}") from None


def _inputs(model, extra: dict, args: argparse.Namespace, target: int):
    """The images to translate: ``--data``, else the run's test digits of ``--from``."""
    from ppgen.data.domains import (
        DIGIT_DOMAINS,
        DIGIT_DOMAINS_SPEC,
        load_digit_domains,
        load_images,
    )

    if args.data is not None:
        if args.source is not None:
            raise UsageError("--from picks the default test digits; with --data the images are "
                             "yours: leave --from out")
        x, shape = load_images(args.data, Path(args.data).name)
        if tuple(shape) != tuple(model.image_shape[-2:]):
            raise UsageError(f"--data {args.data} holds {shape[0]}x{shape[1]} images but the "
                             f"model translates {'x'.join(map(str, model.image_shape))} images")
        return x
    spec = str((extra.get("data") or {}).get("spec", ""))
    if spec.split(":")[0] != DIGIT_DOMAINS_SPEC or not set(model.domains) <= set(DIGIT_DOMAINS):
        raise UsageError(f"pass --data with the images to translate ({model.name} was not "
                         "trained on the digit domains)")
    source = (_domain(model, args.source, "--from") if args.source is not None
              else next(i for i in range(model.num_domains) if i != target))
    data = load_digit_domains(model.domains, seed=args.seed)
    return data.block("test", source)


def _plot(x, translated, model, target: str, out: Path) -> None:
    """Rows of inputs, each followed by the row of their translations."""
    import torch

    from ppgen import plots

    per_row = min(_PER_ROW, len(x))
    rows, labels = [], []
    for i in range(math.ceil(len(x) / per_row)):
        block = slice(i * per_row, (i + 1) * per_row)
        pad = per_row - len(x[block])
        for images, label in ((x[block], "input"), (translated[block], f"→ {target}")):
            rows.append(torch.cat([images, images.new_ones(pad, images.shape[1])]))
            labels.append(label)
    fig = plots.image_grid(torch.cat(rows), tuple(model.image_shape), vmax=1.0, ncols=per_row,
                           title=f"{model.name}: inputs and translations", row_labels=labels)
    plots.save(fig, out)
