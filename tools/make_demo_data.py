"""Generate a small demo dataset for smoke-training.

    python tools/make_demo_data.py coco --out data/demo_coco --num-train 200 --num-val 50 \
        --seed 0 --image-size 160

The first argument picks the dataset kind; each kind is one entry of ``KINDS`` (its CLI options
and the package function that does the work), so another kind (e.g. ``cityscapes``) is one more
entry.  A second run with the same options leaves the data untouched (see ``--overwrite``).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Callable, NamedTuple

from repl_mm.demo import DEFAULT_CLASSES, FASHION_MNIST_CLASSES, make_coco_demo


class Kind(NamedTuple):
    """One dataset kind: ``add_args(parser)`` declares its options, ``generate(args)`` runs it."""

    help: str
    add_args: Callable[[argparse.ArgumentParser], None]
    generate: Callable[[argparse.Namespace], dict[str, Any]]


def _coco_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--out', default='data/demo_coco', help='dataset root')
    parser.add_argument('--num-train', type=int, default=200)
    parser.add_argument('--num-val', type=int, default=50)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--image-size', type=int, default=160)
    parser.add_argument('--classes', nargs='+', default=list(DEFAULT_CLASSES),
                        metavar='NAME', help=f'from {", ".join(FASHION_MNIST_CLASSES)}')
    parser.add_argument('--max-objects', type=int, default=3)
    parser.add_argument('--fmnist-dir', default=None,
                        help='folder with the Fashion-MNIST *-ubyte.gz files')
    parser.add_argument('--overwrite', action='store_true', help='regenerate even if up to date')


def _coco_generate(args: argparse.Namespace) -> dict[str, Any]:
    return make_coco_demo(args.out, num_train=args.num_train, num_val=args.num_val,
                          seed=args.seed, image_size=args.image_size, classes=args.classes,
                          max_objects=args.max_objects, fmnist_dir=args.fmnist_dir,
                          overwrite=args.overwrite)


KINDS: dict[str, Kind] = {
    'coco': Kind('instance segmentation, COCO layout (Fashion-MNIST items on canvases)',
                 _coco_args, _coco_generate),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    sub = parser.add_subparsers(dest='kind', required=True, metavar='KIND',
                                help=f'dataset kind: {", ".join(KINDS)}')
    for name, kind in KINDS.items():
        kind.add_args(sub.add_parser(name, help=kind.help))
    args = parser.parse_args(argv)
    try:
        summary = KINDS[args.kind].generate(args)
    except (ValueError, TypeError, FileExistsError) as err:
        parser.error(str(err))
    state = 'up to date, skipped' if summary.get('skipped') else 'written'
    print(f'{args.kind} demo data {state}: {summary["out_dir"]}')
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == '__main__':
    sys.exit(main())
