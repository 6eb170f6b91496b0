"""Generate a small demo dataset for smoke-training.

    python tools/make_demo_data.py coco --out data/demo_coco --num-train 200 --num-val 50 \
        --seed 0 --image-size 160
    python tools/make_demo_data.py cityscapes --out data/demo_cityscapes --num-train 40 \
        --num-val 10 --seed 0 --image-size 128 256
    python tools/make_demo_data.py fashion-mnist --out data/fashion_mnist --num-train 10000

The first argument picks the dataset kind; each kind is one entry of ``KINDS`` (its CLI options
and the package function that does the work).  A second run with the same options leaves the data
untouched (see ``--overwrite``).  The tool prints one line, ``KIND demo data STATE: OUT_DIR``
with STATE ``written`` or ``up to date, skipped``, then the generator's summary as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Callable, NamedTuple

from repl_mm.demo import (DEFAULT_CLASSES, DEFAULT_FMNIST_DIR, FASHION_MNIST_CLASSES,
                          make_cityscapes_demo, make_coco_demo, make_fashion_mnist_demo)
from repl_mm.demo.generator_record import Summary

#: the first line's STATE, by the summary's ``written``
STATES = {True: 'written', False: 'up to date, skipped'}


class Kind(NamedTuple):
    """One dataset kind: ``add_args(parser)`` declares its options, ``generate(args)`` runs it."""

    help: str
    add_args: Callable[[argparse.ArgumentParser], None]
    generate: Callable[[argparse.Namespace], Summary]


def _common_args(parser: argparse.ArgumentParser, out: str) -> None:
    parser.add_argument('--out', default=out, help='dataset root')
    parser.add_argument('--fmnist-dir', default=DEFAULT_FMNIST_DIR,
                        help='folder with the Fashion-MNIST *-ubyte.gz files')
    parser.add_argument('--overwrite', action='store_true', help='regenerate even if up to date')


def _coco_args(parser: argparse.ArgumentParser) -> None:
    _common_args(parser, 'data/demo_coco')
    parser.add_argument('--num-train', type=int, default=200)
    parser.add_argument('--num-val', type=int, default=50)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--image-size', type=int, default=160)
    parser.add_argument('--classes', nargs='+', default=list(DEFAULT_CLASSES),
                        metavar='NAME', help=f'from {", ".join(FASHION_MNIST_CLASSES)}')
    parser.add_argument('--max-objects', type=int, default=3)


def _coco_generate(args: argparse.Namespace) -> Summary:
    return make_coco_demo(args.out, num_train=args.num_train, num_val=args.num_val,
                          seed=args.seed, image_size=args.image_size, classes=args.classes,
                          max_objects=args.max_objects, fmnist_dir=args.fmnist_dir,
                          overwrite=args.overwrite)


def _cityscapes_args(parser: argparse.ArgumentParser) -> None:
    _common_args(parser, 'data/demo_cityscapes')
    parser.add_argument('--num-train', type=int, default=40)
    parser.add_argument('--num-val', type=int, default=10)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--image-size', type=int, nargs=2, default=[128, 256],
                        metavar=('HEIGHT', 'WIDTH'), help='2:1 like Cityscapes')
    parser.add_argument('--cities-train', nargs='+', default=['demotrain0', 'demotrain1'])
    parser.add_argument('--cities-val', nargs='+', default=['demoval0'])
    parser.add_argument('--no-color', action='store_true', help='skip *_gtFine_color.png')


def _cityscapes_generate(args: argparse.Namespace) -> Summary:
    return make_cityscapes_demo(args.out, num_train=args.num_train, num_val=args.num_val,
                                seed=args.seed, image_size=tuple(args.image_size),
                                cities_train=args.cities_train, cities_val=args.cities_val,
                                fmnist_dir=args.fmnist_dir, overwrite=args.overwrite,
                                write_color=not args.no_color)


def _fashion_mnist_args(parser: argparse.ArgumentParser) -> None:
    _common_args(parser, 'data/fashion_mnist')
    parser.add_argument('--num-train', type=int, default=None,
                        help='keep the first N training items (default: all 60,000)')
    parser.add_argument('--num-val', type=int, default=None,
                        help='keep the first N test items (default: all 10,000)')


def _fashion_mnist_generate(args: argparse.Namespace) -> Summary:
    return make_fashion_mnist_demo(args.out, num_train=args.num_train, num_val=args.num_val,
                                   fmnist_dir=args.fmnist_dir, overwrite=args.overwrite)


KINDS: dict[str, Kind] = {
    'coco': Kind('instance segmentation, COCO layout (Fashion-MNIST items on canvases)',
                 _coco_args, _coco_generate),
    'cityscapes': Kind('semantic segmentation, Cityscapes layout (street scenes with '
                       'Fashion-MNIST objects)', _cityscapes_args, _cityscapes_generate),
    'fashion-mnist': Kind('classification: Fashion-MNIST (or its first items) uncompressed, '
                          "as mmpretrain's FashionMNIST reads it", _fashion_mnist_args,
                          _fashion_mnist_generate),
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
    except (ValueError, TypeError, FileExistsError, FileNotFoundError) as err:
        parser.error(str(err))
    print(f'{args.kind} demo data {STATES[summary["written"]]}: {summary["out_dir"]}')
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == '__main__':
    sys.exit(main())
