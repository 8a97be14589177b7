"""The virtual actor's speaking face: its face and mesh built from a photo (`actor`), its
expression rig (`expression`), visemes from timed phonemes (`visemes`) and the voices that
speak a sentence with exact phoneme times (`speech`: espeak-ng; `festival`: Festival, Flite).

`avatar3d.synth` renders clips of it; `avatar3d.motion` makes training corpora with it. It
sits below both, so that neither the renderer nor the motion model pulls the other in.
"""
