"""Analysis behind tools/analysis: parameter counts, cost reports, synthetic inputs, plots."""
from .params import ParameterCount, count_parameters

__all__ = ['ParameterCount', 'count_parameters']
