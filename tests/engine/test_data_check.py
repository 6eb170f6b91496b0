"""Tests of repl_mm.engine.data_check: a config's datasets checked before anything is built."""
import pytest
from mmengine.config import Config

from repl_mm.engine.data_check import DataNotFoundError, check_data_paths, missing_data_paths


def test_every_missing_path_is_named_with_its_config_key(tmp_path):
    (tmp_path / 'coco' / 'train2017').mkdir(parents=True)
    coco = dict(data_root=f'{tmp_path}/coco', ann_file='annotations/train.json',
                data_prefix=dict(img='train2017/'))
    cfg = Config(dict(train_dataloader=dict(dataset=dict(type='ConcatDataset', datasets=[
        coco, dict(data_root=f'{tmp_path}/voc')]))))
    assert missing_data_paths(cfg, ('train', 'val')) == [
        f'{tmp_path}/coco/annotations/train.json (train_dataloader.dataset.datasets[0].ann_file)',
        f'{tmp_path}/voc (train_dataloader.dataset.datasets[1].data_root)']
    with pytest.raises(DataNotFoundError, match='--cfg-options'):
        check_data_paths(cfg, ('train', ))
    (tmp_path / 'coco' / 'annotations').mkdir()
    (tmp_path / 'coco' / 'annotations' / 'train.json').write_text('{}')
    (tmp_path / 'voc').mkdir()
    check_data_paths(cfg, ('train', ))
