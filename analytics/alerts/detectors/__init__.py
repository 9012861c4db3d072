"""The detectors, one module per kind of question; :mod:`analytics.alerts.engine` runs them.

Each detector computes, with arrays over the subjects it is given, whether its condition is
*active* and whether it is *clear* (past the hysteresis), and hands the few cells that are
active or hold an alert to the lifecycle through :class:`~.stepper.Stepper`. Thresholds come
from :func:`analytics.alerts.subjects.thresholds_for`.

* :mod:`.levels`: ``ceiling``, ``pre_exceedance``, ``floor``, ``pre_floor`` (batch extremes);
* :mod:`.short_term`: ``short_term`` (15-minute mean);
* :mod:`.projected_exposure`: ``projected_exposure`` (the shift's dose at its end);
* :mod:`.trend`: ``trend`` (a rise that will reach a limit);
* :mod:`.sensor_health`: ``flatline``, ``out_of_range``;
* :mod:`.clock`: ``device_offline``, ``sensor_silent``, ``sequence_gap``,
  ``calibration_overdue`` (on the engine clock).
"""
