"""Survey scale: restore and measure every source of many HST files on Dask distributed (``galviewer survey``).

The same pipeline as a click (:class:`~galviewer.core.restore.pipeline.Pipeline`), one task per chunk of sources,
chunk files of stamp cubes (:mod:`galviewer.survey.chunks`) and one catalogue in Parquet and ECSV
(:mod:`galviewer.survey.engine`).
"""

from galviewer.survey.chunks import read_rows, read_stamp
from galviewer.survey.engine import SurveyConfig, SurveyReport, expand_inputs, run_survey, survey_async

__all__ = ["SurveyConfig", "SurveyReport", "expand_inputs", "read_rows", "read_stamp", "run_survey", "survey_async"]
