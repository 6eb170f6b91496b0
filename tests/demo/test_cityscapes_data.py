"""Tests of repl_mm.demo.cityscapes_data: the demo generator writes data that mmseg and
cityscapesscripts read exactly like Cityscapes."""
from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from repl_mm.demo.cityscapes_data import make_cityscapes_demo

H, W = 64, 128
N_TRAIN, N_VAL = 4, 3
CITIES_TRAIN, CITIES_VAL = ('demotrain0', 'demotrain1'), ('demoval0',)
FMNIST = Path('/usr/share/datasets/fashion-mnist')
NAME_RE = re.compile(r'^(?P<city>[a-z0-9]+)_(?P<seq>\d{6})_(?P<frame>\d{6})_leftImg8bit\.png$')
GT_SUFFIXES = ('labelIds', 'labelTrainIds', 'instanceIds', 'color')


def _make(root: Path, **kw) -> dict:
    args = dict(num_train=N_TRAIN, num_val=N_VAL, seed=3, image_size=(H, W),
                cities_train=CITIES_TRAIN, cities_val=CITIES_VAL)
    args.update(kw)
    return make_cityscapes_demo(str(root), **args)


@pytest.fixture(scope='module')
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp('cs') / 'data'
    return root, _make(root)


def _gt(img_path: Path, suffix: str) -> Path:
    rel = img_path.name.replace('_leftImg8bit.png', f'_gtFine_{suffix}.png')
    return Path(str(img_path.parent).replace('leftImg8bit', 'gtFine')) / rel


def _images(root: Path, split: str) -> list[Path]:
    return sorted((root / 'leftImg8bit' / split).glob('*/*_leftImg8bit.png'))


def _read(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.array(im)


def _id_to_train_id() -> np.ndarray:
    from cityscapesscripts.helpers.labels import labels
    lut = np.full(256, 255, np.uint8)
    for lab in labels:
        if lab.id >= 0:
            lut[lab.id] = lab.trainId
    return lut


def test_layout_and_names(demo: tuple[Path, dict]) -> None:
    root, summary = demo
    assert summary['written'] and (root / 'generator.json').is_file()
    have_fmnist = (FMNIST / 'train-images-idx3-ubyte.gz').is_file()
    assert summary['source'] == ('fashion-mnist' if have_fmnist else 'procedural')
    for split, n, cities in (('train', N_TRAIN, CITIES_TRAIN), ('val', N_VAL, CITIES_VAL)):
        imgs = _images(root, split)
        assert len(imgs) == n
        assert sorted(p.name for p in (root / 'leftImg8bit' / split).iterdir()) == sorted(cities)
        for p in imgs:
            m = NAME_RE.match(p.name)
            assert m and m['city'] == p.parent.name and m['frame'] == '000019', p.name
            with Image.open(p) as im:
                assert im.mode == 'RGB' and im.size == (W, H)
            for suffix in GT_SUFFIXES:
                assert _gt(p, suffix).is_file(), _gt(p, suffix)
        # every gt file belongs to an image (what mmseg derives from img_suffix/seg_map_suffix)
        gts = sorted((root / 'gtFine' / split).glob('*/*_gtFine_labelTrainIds.png'))
        assert [g.name[:-len('_gtFine_labelTrainIds.png')] for g in gts] == \
               [p.name[:-len('_leftImg8bit.png')] for p in imgs]
        assert len(list((root / 'gtFine' / split).glob('*/*'))) == n * len(GT_SUFFIXES)
        assert summary['splits'][split]['num_images'] == n
        assert summary['splits'][split]['paths'] == {'img_path': f'leftImg8bit/{split}',
                                                     'seg_map_path': f'gtFine/{split}'}


def test_train_ids_and_instance_ids_follow_cityscapes(demo: tuple[Path, dict]) -> None:
    from cityscapesscripts.helpers.labels import id2label
    root, summary = demo
    lut = _id_to_train_id()
    n_instances = 0
    for split in ('train', 'val'):
        for p in _images(root, split):
            ids = _read(_gt(p, 'labelIds'))
            train = _read(_gt(p, 'labelTrainIds'))
            inst = _read(_gt(p, 'instanceIds')).astype(np.int64)  # 16-bit PNG, like Cityscapes
            color = _read(_gt(p, 'color'))
            assert ids.dtype == np.uint8 and train.dtype == np.uint8 and ids.shape == (H, W)
            assert set(np.unique(ids).tolist()) <= set(id2label)
            np.testing.assert_array_equal(train, lut[ids])
            assert set(np.unique(train).tolist()) <= set(range(19)) | {255}
            # instanceIds: labelId where no instance, labelId * 1000 + k on instances
            stuff = inst < 1000
            np.testing.assert_array_equal(inst[stuff], ids[stuff])
            np.testing.assert_array_equal(inst[~stuff] // 1000, ids[~stuff])
            for v in np.unique(inst[~stuff]):
                assert id2label[int(v) // 1000].hasInstances
            for lab_id in np.unique(ids):  # thing pixels are always individual instances here
                if id2label[int(lab_id)].hasInstances:
                    assert (inst[ids == lab_id] >= 1000).all()
                    ks = np.unique(inst[ids == lab_id] % 1000)
                    np.testing.assert_array_equal(ks, np.arange(len(ks)))  # 0, 1, 2, ...
            n_instances += len(np.unique(inst[~stuff]))
            assert color.shape == (H, W, 4)
            for lab_id in np.unique(ids):
                assert tuple(color[ids == lab_id][0, :3]) == id2label[int(lab_id)].color
    assert n_instances == sum(count for split in summary['splits'].values()
                              for count in split['per_class'].values()) > 0


def test_deterministic_and_skip(tmp_path: Path, demo: tuple[Path, dict]) -> None:
    root, _ = demo
    other = tmp_path / 'again'
    assert _make(other)['written']
    files = sorted(f.relative_to(root) for f in root.rglob('*.png'))
    assert files == sorted(f.relative_to(other) for f in other.rglob('*.png'))
    for f in files:
        assert (root / f).read_bytes() == (other / f).read_bytes(), f
    # same parameters: skipped, files untouched
    mtimes = {f: (other / f).stat().st_mtime_ns for f in files}
    again = _make(other)
    assert not again['written'] and again['splits']['val']['num_images'] == N_VAL
    assert mtimes == {f: (other / f).stat().st_mtime_ns for f in files}
    # another seed: regenerated in place with different pixels and no stale files
    changed = _make(other, seed=4, num_val=2)
    assert changed['written']
    assert len(_images(other, 'val')) == 2
    first = files[0]
    assert (root / first).read_bytes() != (other / first).read_bytes()


def test_splits_are_disjoint(demo: tuple[Path, dict]) -> None:
    root, summary = demo
    train, val = _images(root, 'train'), _images(root, 'val')
    assert {p.parent.name for p in train}.isdisjoint({p.parent.name for p in val})
    assert {p.name for p in train}.isdisjoint({p.name for p in val})
    train_bytes = {p.read_bytes() for p in train}
    assert not any(p.read_bytes() in train_bytes for p in val)
    assert summary['params']['cities_train'] == list(CITIES_TRAIN)


def test_bad_arguments(tmp_path: Path) -> None:
    bad = [dict(num_train=0), dict(num_val=-1), dict(seed=-1), dict(seed=1.5), dict(num_train=True),
           dict(image_size=(16, 128)), dict(image_size=(64,)), dict(image_size=(64.0, 128)),
           dict(cities_train=('a_b',)), dict(cities_train=('x', 'x')),
           dict(cities_val=('demotrain0',)), dict(num_val=1, cities_val=('v0', 'v1'))]
    for kw in bad:
        with pytest.raises(ValueError):
            _make(tmp_path / 'bad', **kw)
    with pytest.raises(TypeError):
        _make(tmp_path / 'bad', cities_train='demotrain0')
    foreign = tmp_path / 'foreign'
    foreign.mkdir()
    (foreign / 'precious.txt').write_text('keep me')
    with pytest.raises(FileExistsError):
        _make(foreign)
    assert (foreign / 'precious.txt').read_text() == 'keep me'


def test_fallback_without_fashion_mnist(tmp_path: Path) -> None:
    empty = tmp_path / 'no_fmnist'
    empty.mkdir()
    with pytest.warns(RuntimeWarning, match='Fashion-MNIST'):
        summary = _make(tmp_path / 'proc', fmnist_dir=str(empty), num_train=2, num_val=1,
                        cities_train=('t0',), cities_val=('v0',))
    assert summary['source'] == 'procedural'
    assert sum(summary['splits']['train']['per_class'].values()) > 0
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # fmnist_dir=None asks for procedural objects: no warning
        assert _make(tmp_path / 'proc2', fmnist_dir=None)['source'] == 'procedural'


@pytest.fixture(scope='module')
def val_dataset(demo: tuple[Path, dict]):
    from mmseg.datasets import CityscapesDataset
    from mmseg.utils import register_all_modules
    register_all_modules()
    root, _ = demo
    return CityscapesDataset(
        data_root=str(root),
        data_prefix=dict(img_path='leftImg8bit/val', seg_map_path='gtFine/val'),
        pipeline=[dict(type='LoadImageFromFile'), dict(type='LoadAnnotations')])


def _samples_with_gt_as_prediction(dataset) -> list[dict]:
    import torch
    out = []
    for i in range(len(dataset)):
        item = dataset[i]
        gt = torch.from_numpy(item['gt_seg_map'].astype(np.int64))[None]
        out.append(dict(img_path=item['img_path'], seg_map_path=item['seg_map_path'],
                        pred_sem_seg=dict(data=gt), gt_sem_seg=dict(data=gt)))
    return out


def test_mmseg_cityscapes_dataset_and_iou_metric(val_dataset) -> None:
    from mmseg.evaluation import IoUMetric
    assert len(val_dataset) == N_VAL
    for i in range(len(val_dataset)):
        item = val_dataset[i]
        assert item['img'].shape == (H, W, 3)
        assert item['gt_seg_map'].shape == (H, W)
        assert set(np.unique(item['gt_seg_map']).tolist()) <= set(range(19)) | {255}
    metric = IoUMetric(iou_metrics=['mIoU'])
    metric.dataset_meta = val_dataset.metainfo
    metric.process({}, _samples_with_gt_as_prediction(val_dataset))
    res = metric.compute_metrics(metric.results)
    assert res['mIoU'] == pytest.approx(100.0) and res['aAcc'] == pytest.approx(100.0)


def test_mmseg_cityscapes_metric(val_dataset, tmp_path: Path) -> None:
    import torch
    import cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling as CSEval
    from mmseg.evaluation import CityscapesMetric
    samples = _samples_with_gt_as_prediction(val_dataset)

    metric = CityscapesMetric(output_dir=str(tmp_path / 'pred'), keep_results=True)
    metric.dataset_meta = val_dataset.metainfo
    metric.process({}, samples)
    res = metric.compute_metrics(metric.results)  # runs cityscapesscripts on labelIds/instanceIds
    assert res['averageScoreCategories'] == pytest.approx(1.0)
    assert res['averageScoreInstCategories'] == pytest.approx(1.0)
    # the per-class mIoU from the same evaluator run over mmseg's files
    full = CSEval.evaluateImgLists(*zip(*metric.results), CSEval.args)
    assert full['averageScoreClasses'] == pytest.approx(1.0)

    # a wrong prediction (all road) must score low: the evaluator really reads our ground truth
    bad = CityscapesMetric(output_dir=str(tmp_path / 'bad'), keep_results=True)
    bad.dataset_meta = val_dataset.metainfo
    bad.process({}, [dict(s, pred_sem_seg=dict(data=torch.zeros_like(s['pred_sem_seg']['data'])))
                     for s in samples])
    assert bad.compute_metrics(bad.results)['averageScoreCategories'] < 0.5
