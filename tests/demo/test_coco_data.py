"""Tests of repl_mm.demo.coco_data: the COCO demo generator writes an exact COCO set that mmdet
loads and pycocotools scores."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools.coco import COCO

from repl_mm.demo import DEFAULT_FMNIST_DIR, FASHION_MNIST_CLASSES, make_coco_demo
from repl_mm.demo.fashion_mnist_source import missing_files

CLASSES = ('trouser', 'bag', 'ankle_boot')
SMALL = dict(num_train=6, num_val=4, image_size=96, classes=CLASSES)
HAVE_FMNIST = not missing_files(DEFAULT_FMNIST_DIR)


def _make(out: Path, **kwargs) -> dict:
    """Generate quietly (the fallback warning is tested on its own)."""
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', RuntimeWarning)
        return make_coco_demo(str(out), **{**SMALL, **kwargs})


def _load(root: Path, split: str) -> dict:
    return json.loads((root / 'annotations' / f'instances_{split}2017.json').read_text())


def _ann_file(summary: dict, split: str) -> str:
    return str(Path(summary['out_dir']) / summary['splits'][split]['paths']['ann_file'])


def _instances(summary: dict, split: str) -> int:
    return sum(summary['splits'][split]['per_class'].values())


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob('*'))
            if p.is_file()}


@pytest.fixture(scope='module')
def dataset(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp('demo_coco')
    return root, _make(root, seed=0)


def test_layout_and_json_structure(dataset):
    root, summary = dataset
    assert summary['source'] == ('fashion-mnist' if HAVE_FMNIST else 'procedural')
    assert summary['params']['classes'] == list(CLASSES) and summary['written'] is True
    num_images = {split: summary['splits'][split]['num_images'] for split in ('train', 'val')}
    assert num_images == {'train': 6, 'val': 4}
    assert (root / 'generator.json').is_file()
    splits = {s: _load(root, s) for s in ('train', 'val')}
    for split, data in splits.items():
        assert data['categories'] == [dict(id=i + 1, name=c, supercategory='fashion')
                                      for i, c in enumerate(CLASSES)]
        per_class = summary['splits'][split]['per_class']
        assert list(per_class) == list(CLASSES)
        assert [sum(a['category_id'] == i + 1 for a in data['annotations'])
                for i in range(len(CLASSES))] == list(per_class.values())
        assert summary['splits'][split]['paths'] == {
            'ann_file': f'annotations/instances_{split}2017.json', 'img': f'{split}2017/'}
        for img in data['images']:
            assert set(img) == {'id', 'file_name', 'width', 'height'}
            pixels = cv2.imread(str(root / f'{split}2017' / img['file_name']))
            assert pixels.shape == (img['height'], img['width'], 3) == (96, 96, 3)
        image_ids = {img['id'] for img in data['images']}
        assert {a['image_id'] for a in data['annotations']} == image_ids  # no empty image
        for ann in data['annotations']:
            assert set(ann) == {'id', 'image_id', 'category_id', 'bbox', 'area',
                                'segmentation', 'iscrowd'}
            assert ann['iscrowd'] == 0 and ann['category_id'] in (1, 2, 3)
            x, y, w, h = ann['bbox']
            assert all(isinstance(v, float) for v in ann['bbox'])
            assert x >= 0 and y >= 0 and x + w <= 96 and y + h <= 96
            assert max(w, h) >= 0.5 * 0.35 * 96               # large objects
            assert ann['segmentation'] and all(len(p) >= 6 and len(p) % 2 == 0
                                               for p in ann['segmentation'])
    train, val = splits['train'], splits['val']
    assert not {i['id'] for i in train['images']} & {i['id'] for i in val['images']}
    assert not ({i['file_name'] for i in train['images']}
                & {i['file_name'] for i in val['images']})
    ann_ids = [a['id'] for d in (train, val) for a in d['annotations']]
    assert len(ann_ids) == len(set(ann_ids))


def test_polygons_decode_to_the_annotated_box_and_area(dataset):
    root, _ = dataset
    for split in ('train', 'val'):
        coco = COCO(str(root / 'annotations' / f'instances_{split}2017.json'))
        for img_id, img in coco.imgs.items():
            pixels = cv2.imread(str(root / f'{split}2017' / img['file_name'])).astype(float)
            union = np.zeros((img['height'], img['width']), np.int32)
            for ann in coco.imgToAnns[img_id]:
                mask = coco.annToMask(ann).astype(bool)
                ys, xs = np.nonzero(mask)
                decoded = [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
                np.testing.assert_allclose(decoded, ann['bbox'], atol=1.0)
                assert abs(mask.sum() - ann['area']) <= 0.02 * ann['area']
                union += mask
            assert union.max() == 1                   # masks never overlap
            # High contrast: every object pixel is brighter than the dim background on average.
            inside, outside = pixels[union > 0].max(1), pixels[union == 0].max(1)
            assert inside.min() > outside.mean() + 20


def test_deterministic_for_a_seed(dataset, tmp_path):
    root, _ = dataset
    _make(tmp_path / 'again', seed=0)
    assert _tree(tmp_path / 'again') == _tree(root)
    _make(tmp_path / 'other', seed=1)
    assert _load(tmp_path / 'other', 'train') != _load(root, 'train')
    assert ((tmp_path / 'other' / 'train2017' / '000000000001.png').read_bytes()
            != (root / 'train2017' / '000000000001.png').read_bytes())


def test_skips_identical_regeneration_and_clears_stale_files(tmp_path):
    out = tmp_path / 'demo'
    first = _make(out, seed=3)
    stamp = (out / 'generator.json').stat().st_mtime_ns
    again = _make(out, seed=3)
    assert again['written'] is False and again['splits'] == first['splits']
    assert (out / 'generator.json').stat().st_mtime_ns == stamp
    assert _make(out, seed=3, overwrite=True)['written'] is True
    smaller = _make(out, seed=3, num_train=2)             # other parameters: regenerate
    assert smaller['written'] is True
    assert len(list((out / 'train2017').iterdir())) == 2  # no stale images left behind


def test_refuses_to_clobber_foreign_data(tmp_path):
    (tmp_path / 'train2017').mkdir()
    (tmp_path / 'train2017' / 'mine.jpg').write_bytes(b'not ours')
    with pytest.raises(FileExistsError, match='overwrite=True'):
        _make(tmp_path)
    assert _make(tmp_path, overwrite=True)['splits']['train']['num_images'] == 6
    assert not (tmp_path / 'train2017' / 'mine.jpg').exists()


@pytest.mark.parametrize('kwargs, message', [
    (dict(num_train=0), 'num_train must be >= 1'),
    (dict(num_val=-1), 'num_val must be >= 1'),
    (dict(image_size=16), 'image_size must be >= 32'),
    (dict(classes=('trouser', 'shoe')), r"unknown class name\(s\) \['shoe'\]; valid names"),
    (dict(classes=('bag', 'bag')), 'unique'),
    (dict(classes=()), 'non-empty'),
    (dict(min_objects=3, max_objects=2), 'max_objects'),
    (dict(object_scale=(0.6, 0.3)), 'object_scale'),
    (dict(image_ext='.gif'), 'image_ext'),
])
def test_rejects_bad_arguments(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_coco_demo(str(tmp_path), **{**SMALL, **kwargs})
    assert not any(tmp_path.iterdir())                    # nothing written


def test_unknown_class_error_lists_every_valid_name(tmp_path):
    with pytest.raises(ValueError) as err:
        make_coco_demo(str(tmp_path), classes=['Ankle Boot', 'hat'])
    assert all(name in str(err.value) for name in FASHION_MNIST_CLASSES)


def test_procedural_fallback_without_fashion_mnist(tmp_path):
    empty = tmp_path / 'no_fmnist'
    empty.mkdir()
    args = dict(SMALL, classes=['Ankle Boot', 'bag'])
    with pytest.warns(RuntimeWarning, match='procedural shapes'):
        summary = make_coco_demo(str(tmp_path / 'demo'), fmnist_dir=str(empty), **args)
    assert summary['source'] == 'procedural'
    assert summary['params']['classes'] == ['ankle_boot', 'bag']
    record = json.loads((tmp_path / 'demo' / 'generator.json').read_text())
    assert record['params']['source'] == 'procedural'
    coco = COCO(_ann_file(summary, 'val'))
    assert len(coco.imgs) == 4 and len(coco.anns) == _instances(summary, 'val') > 0
    for ann in coco.anns.values():
        ys, xs = np.nonzero(coco.annToMask(ann))
        assert [xs.min(), ys.min(), xs.max() - xs.min() + 1,
                ys.max() - ys.min() + 1] == pytest.approx(ann['bbox'], abs=1.0)
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # fmnist_dir=None asks for the shapes: no warning
        make_coco_demo(str(tmp_path / 'asked'), fmnist_dir=None, **args)
    assert _tree(tmp_path / 'asked') == _tree(tmp_path / 'demo')


def test_mmdet_loads_it_and_coco_metric_scores_ground_truth_at_one(dataset):
    torch = pytest.importorskip('torch')
    pytest.importorskip('mmdet')
    from mmdet.datasets import CocoDataset
    from mmdet.evaluation import CocoMetric
    from mmdet.utils import register_all_modules
    register_all_modules()

    root, summary = dataset
    pipeline = [dict(type='LoadImageFromFile'),
                dict(type='LoadAnnotations', with_bbox=True, with_mask=True)]
    for split in ('train', 'val'):
        ds = CocoDataset(data_root=str(root), ann_file=f'annotations/instances_{split}2017.json',
                         data_prefix=dict(img=f'{split}2017/'), metainfo=dict(classes=CLASSES),
                         pipeline=pipeline, test_mode=(split == 'val'))
        assert len(ds) == summary['splits'][split]['num_images']
        metric = CocoMetric(ann_file=_ann_file(summary, split), metric=['bbox', 'segm'])
        metric.dataset_meta = ds.metainfo
        instances = 0
        for i in range(len(ds)):
            item = ds[i]
            boxes, masks = item['gt_bboxes'].tensor, item['gt_masks'].masks
            assert item['img_shape'] == (96, 96) and masks.shape == (len(boxes), 96, 96)
            instances += len(boxes)
            metric.process({}, [dict(img_id=item['img_id'], ori_shape=item['ori_shape'],
                                     pred_instances=dict(
                                         bboxes=boxes, scores=torch.ones(len(boxes)),
                                         labels=torch.as_tensor(item['gt_bboxes_labels']),
                                         masks=torch.from_numpy(masks).bool()))])
        assert instances == _instances(summary, split)
        scores = metric.evaluate(len(ds))
        assert scores['coco/bbox_mAP'] == pytest.approx(1.0, abs=1e-3)
        assert scores['coco/segm_mAP'] == pytest.approx(1.0, abs=1e-3)
