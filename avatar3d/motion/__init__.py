"""Motion from speech: expression basis, audio-to-expression VAE, sync expert, LLE post-net, pose and blink."""
