"""Talking clips of the virtual actor (`avatar3d.rig`), rendered with their exact ground truth."""
