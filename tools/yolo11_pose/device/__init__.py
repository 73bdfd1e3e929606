"""The device pipeline on the host: the chip's preprocessing and pixel formats, the head contract and decoding, the
component's C++ built for the host (``host/``), and the twin that chains them with a model."""
