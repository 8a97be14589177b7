"""``avatar3d view``: the avatar in the browser, on viser (docs/viewer.md).

- `viewer.config`: the command's settings.
- `viewer.camera`: the browser's camera as the avatar's `View`, and the filmed camera as a
  browser camera.
- `viewer.timeline`: what plays (the training frames, a line of speech, a motion file) and the
  audio clock the frames follow.
- `viewer.session`: one browser tab: its controls and its render loop.
- `viewer.server`: the server, one session per tab.
"""
