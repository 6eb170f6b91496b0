"""``repl_mm.models.core_logs``: the mechanism's log lines reach the run's mmengine log."""
import logging

from mmengine.logging import MMLogger

import repl_mm  # noqa: F401  (routes repl_core's logger)
from conftest import LogRecords


def test_repl_core_lines_reach_the_current_mmengine_logger_once():
    records, root = LogRecords(), LogRecords()
    logger = MMLogger.get_current_instance()
    logger.addHandler(records)
    logging.getLogger().addHandler(root)
    try:
        logging.getLogger('repl_core.coefficient_steps').info('RepL: a line of the mechanism')
        logging.getLogger('repl_core.replace').warning('RepL: a warning of the mechanism')
    finally:
        logger.removeHandler(records)
        logging.getLogger().removeHandler(root)
    assert records.messages[-2:] == ['RepL: a line of the mechanism',
                                     'RepL: a warning of the mechanism']
    assert not [m for m in root.messages if 'of the mechanism' in m]  # not a second time
