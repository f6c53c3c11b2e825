"""Device side: the only code packaged into executables. Imports nothing but numpy, the chosen backend
and (for the audio app) sounddevice — never onnx, the quantizer, PyInstaller or the host-side `edge`."""
