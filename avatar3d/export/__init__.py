"""What a studio takes away: backgrounds and compositing passes for driven video, meshes."""
