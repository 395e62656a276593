"""Live input: microphone capture -> a :class:`~model_core.runtime.session.Session`, driven
by :func:`model_core.runtime.driver.run` (docs/architecture.md, "Live"). Imports
``sounddevice`` only when a device is opened."""

from .engine import (DeviceError, LiveEngine, LiveError, LiveEvent, LiveStats, NoInputDevice,
                     RingBuffer, SampleRateRefused, level_db, level_meter, list_input_devices,
                     resolve_input_device, run_live)

__all__ = ["DeviceError", "LiveEngine", "LiveError", "LiveEvent", "LiveStats", "NoInputDevice",
           "RingBuffer", "SampleRateRefused", "level_db", "level_meter", "list_input_devices",
           "resolve_input_device", "run_live"]
