"""Analysis helpers behind tools/analysis: parameter counts of RepL models and their plain twins."""
from .params import ParameterCount, count_parameters, plain_model_cfg

__all__ = ['ParameterCount', 'count_parameters', 'plain_model_cfg']
