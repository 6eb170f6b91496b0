"""The tests mirror the packages, so test modules share names across folders
(``tests/mmdet/test_backbones.py``, ``tests/mmseg/test_backbones.py``): each test folder is a
package (``tests.mmdet.test_backbones``), which also lets spawned processes import a test module's
worker functions."""
