"""``ppgen represent``: encoder features of new rows under a trained model (``ppgen.represent``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ppgen.cli import options, runs
from ppgen.cli.checks import UsageError, check_output, count, refuse_inputs


def add_parser(sub) -> None:
    p = sub.add_parser(
        "represent",
        help="encoder features (latent codes) of data under a trained model",
        description="Encode every row of --data with a model from `ppgen fit` that has an "
        "encoder (VAE, AAE, PPCA, an unconditional flow's base-space code, ...) and write the "
        "features [N, F] to --out as a .npy file (ppgen.represent).",
    )
    p.add_argument("dir", help="folder written by `ppgen fit` (or a model.pt file)")
    p.add_argument("--data", required=True, help="rows to encode, a .npy or .csv file")
    p.add_argument("--out", required=True, help=".npy file to write the features to (never "
                   "one of the inputs)")
    p.add_argument("--batch-size", type=count(1), help="rows encoded at once (default 1024)")
    options.add_common(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from ppgen.devices import resolve_device
    from ppgen.errors import ModelError
    from ppgen.represent import represent

    out = Path(args.out)
    check_output(out, "--out", (".npy",))
    refuse_inputs([out], [args.data, runs.model_file(args.dir)])
    model, extra = runs.load_run(args.dir)
    x = runs.read_rows(model, extra, args.data)
    model.to(resolve_device(args.device)).eval()
    torch.manual_seed(args.seed)
    try:
        z = represent(model, x, batch_size=args.batch_size)
    except ModelError as err:
        raise UsageError(f"{model.name} ({args.dir}) cannot represent data: {err}") from None
    features = z.double().cpu().numpy()
    runs.atomic(out, lambda f: np.save(f, features))
    print(f"encoded {len(features)} rows of {args.data} with {model.name}: {features.shape[1]} "
          f"features per row; wrote {args.out}")
    return 0
