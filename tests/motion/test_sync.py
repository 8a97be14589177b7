"""The sync expert's windows, training objective and offset search, on data where audio is a
known function of the lips."""

import numpy as np
import torch

from avatar3d.motion.features import AUDIO_DIMS
from avatar3d.motion.sync import (AUDIO_ROWS, MAX_SHIFT, SyncConfig, SyncExpert, audio_windows, lip_windows,
                                  shift_similarity, sync_loss, sync_measure)
from avatar3d.train.motion import Sequences


def _clip(rng, frames: int, mixing: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Lips (T, 40, 3) and audio (2T, A) that says each frame's lips twice (plus noise)."""
    lips = rng.normal(scale=0.02, size=(frames, 40, 3)).astype(np.float32)
    audio = np.repeat(lips.reshape(frames, -1) @ mixing, 2, axis=0)
    audio += rng.normal(scale=0.1, size=audio.shape)
    return torch.from_numpy(lips), torch.from_numpy(audio.astype(np.float32))


def test_windows_are_centred_and_clamped_at_the_ends():
    lips = torch.arange(10.0)[:, None, None].expand(10, 40, 3)
    audio = torch.arange(20.0)[:, None].expand(20, AUDIO_DIMS)
    assert lip_windows(lips, torch.tensor([5]))[0, :, 0, 0].tolist() == [3, 4, 5, 6, 7]
    assert lip_windows(lips, torch.tensor([0]))[0, :, 0, 0].tolist() == [0, 0, 0, 1, 2]
    assert audio_windows(audio, torch.tensor([5]))[0, :, 0].tolist() == list(range(6, 16))  # frames 3..7, 2 rows each
    assert audio_windows(audio, torch.tensor([9]))[0, :, 0].tolist() == [14, 15, 16, 17, 18, 19, 19, 19, 19, 19]
    assert AUDIO_ROWS == 10


def test_trained_expert_finds_the_offset_of_shifted_audio():
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    mixing = rng.normal(size=(120, AUDIO_DIMS)).astype(np.float32) * 3
    clips = [_clip(rng, 60, mixing) for _ in range(8)]
    data = Sequences([audio for _, audio in clips], [torch.zeros(len(lips), 1) for lips, _ in clips],
                     [lips for lips, _ in clips], [torch.zeros(len(lips)) for lips, _ in clips], torch.zeros(len(clips), 6))
    expert = SyncExpert(SyncConfig(width=32, embedding=16))
    optimizer = torch.optim.Adam(expert.parameters(), lr=3e-3)
    losses = []
    for _ in range(150):
        loss = sync_loss(expert, *data.sync_batch(rng, 32))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:10])

    lips, audio = _clip(rng, 80, mixing)  # unseen
    assert sync_measure(expert, audio, lips)["offset_frames"] == 0
    delayed = torch.cat([audio[:8], audio[:-8]])  # the audio comes 4 frames (8 rows) late
    measured = sync_measure(expert, delayed, lips)
    assert measured["offset_frames"] == 4
    assert measured["score"] > 0.2
    similarity = shift_similarity(expert, delayed, lips)
    assert similarity.shape == (2 * MAX_SHIFT + 1,)
    assert int(similarity.argmax()) == MAX_SHIFT + 4
