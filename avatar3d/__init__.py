"""avatar3d: personal 3D talking avatars from a few minutes of video."""

__version__ = "0.1.0"
