"""The rules and scoring of the Grand Autoencoder Challenge.

For each track a student enters, :class:`AutoencoderChallenge` scores the loaded weights:

1. the student's ``Encoder`` runs in one fresh sandboxed kernel, built from their architecture cell alone,
   on hidden images drawn from the course secret (which never enters a sandbox);
2. the codes are validated here (at most k finite numbers per image) and rounded to half precision, so
   that no image can travel through the bottleneck inside float mantissas;
3. the ``Decoder`` runs in a second, separate fresh kernel that receives only those codes: it never sees
   an image, and nothing the encoder's kernel wrote or set reaches it;
4. the mean squared pixel error is computed here, separately on the public and the private split.

:meth:`AutoencoderChallenge.retrain` is the budget check: it trains the architecture afresh with the
student's own ``train`` on exactly the track's budget of images, scores the result the same way and says
whether it reproduces the submitted cost.
"""

from __future__ import annotations

import functools
import hashlib
import typing as t
from pathlib import Path

import numpy as np

from mlphys.course import autoencoder
from mlphys.course.circles import IMAGE_SIZE, circle_images
from mlphys.grading.challenge import (
    Challenge,
    EntryProblem,
    RetrainBand,
    RetrainResult,
    Scored,
    Scoring,
    TimeUp,
    finite_array,
    plain_state,
    returned_kind,
)

PUBLIC_IMAGES = 500
PRIVATE_IMAGES = 500
SHOWN_IMAGES = 6  # decodings of the first public images, kept for the leaderboard page
ARCHITECTURE_CELL = "architecture"
TRAINING_CELL = "training"
# What the architecture cell may rely on, as the notebook says.
PREAMBLE = "import numpy as np\nimport torch\nfrom torch import nn\n"


@functools.lru_cache(maxsize=4)
def hidden_images(secret: str) -> dict[str, np.ndarray]:
    """The public and private test images of a course, drawn from its secret (uint8, 0 or 1)."""
    digest = hashlib.sha256(f"autoencoder-challenge:{secret}".encode()).digest()
    public, private = np.random.SeedSequence(int.from_bytes(digest[:16], "little")).spawn(2)
    return {
        "public": circle_images(PUBLIC_IMAGES, np.random.default_rng(public)).astype(np.uint8),
        "private": circle_images(PRIVATE_IMAGES, np.random.default_rng(private)).astype(np.uint8),
    }


def validate_codes(value: t.Any, n: int, code_limit: int) -> np.ndarray:
    """(n, k) float32 codes, each number rounded to half precision; EntryProblem if not acceptable."""
    # The encoder has seen the hidden images: the messages say nothing it chose (see returned_kind).
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "fiu" or value.ndim < 1 or len(value) != n:
        raise EntryProblem(
            f"Your Encoder must return one code per image, shape ({n}, k); it returned {returned_kind(value)}."
        )
    codes = value.reshape(n, -1).astype(np.float64)
    if codes.shape[1] > code_limit:
        raise EntryProblem(
            f"Your Encoder's code has more numbers per image than this track allows (at most {code_limit})."
        )
    if not np.all(np.isfinite(codes)):
        raise EntryProblem("Your Encoder returned codes that are not finite (NaN or infinity).")
    with np.errstate(over="ignore"):
        rounded = codes.astype(np.float16)
    if not np.all(np.isfinite(rounded)):
        raise EntryProblem("Your Encoder returned code numbers beyond +-65504, which half precision cannot hold.")
    return rounded.astype(np.float32)


def validate_images(value: t.Any, n: int) -> np.ndarray:
    """(n, 27, 27) float64 decoded images; EntryProblem if not acceptable."""
    want = (n, IMAGE_SIZE, IMAGE_SIZE)
    return finite_array(
        value,
        want,
        wrong_shape=f"Your Decoder must return images of shape {want}; it returned",
        not_finite="Your Decoder returned pixels that are not finite (NaN or infinity).",
    )


class AutoencoderChallenge(Challenge):
    key = "autoencoder_challenge"
    title = "Grand Autoencoder Challenge"
    tracks = autoencoder.TRACKS
    track_notes: t.ClassVar[dict[str, str]] = {
        track: (
            f"Code of at most {autoencoder.parse_track(track)[0]} numbers, "
            f"trained on {autoencoder.parse_track(track)[1]:,} images."
        )
        for track in autoencoder.TRACKS
    }
    metric = "mean squared pixel error on the hidden test images"
    detail_label = "code size"
    picture_caption = "their reconstructions by the best entries of this board"
    pass_bands = (0.05, 0.02)
    weights_parts = ("encoder", "decoder")
    cells = (ARCHITECTURE_CELL, TRAINING_CELL)
    preamble = PREAMBLE
    kernel_source = (Path(__file__).parent / "kernel.py").read_text()
    # Inverted circles cost the reference network (zero-padded convolutions) about 25-35 % more than the
    # originals; an entry trained on 3.3 times the budget retrains about 45 % worse than it was submitted.
    retrain_band = RetrainBand(rel_tol=0.5, abs_tol=0.0005)

    def weights_filename(self, track: str) -> str:
        return autoencoder.weights_filename(track)

    def score(
        self, track: str, state: dict[str, dict[str, np.ndarray]], context: Scoring, *, inverted: bool = False
    ) -> Scored:
        """Encoder, validated codes, decoder, cost (on inverted images for the retraining check).  Never raises
        EntryProblem."""
        entry = Scored(track)
        code_limit, _ = autoencoder.parse_track(track)
        split = hidden_images(context.secret)
        images = np.concatenate([split["public"], split["private"]])
        if inverted:
            images = 1 - images
        kernel = context.fresh_kernel([ARCHITECTURE_CELL])
        try:
            entry.stage = "encoder"
            raw_codes = kernel.call("mlphys_run_encoder", code_limit, state["encoder"], images, what="Encoder")
            codes = validate_codes(raw_codes, len(images), code_limit)
            entry.detail = str(codes.shape[1])
            entry.stage = "decoder"
            raw_images = kernel.call("mlphys_run_decoder", code_limit, state["decoder"], codes, what="Decoder")
            decoded = validate_images(raw_images, len(images))
        except EntryProblem as exc:
            entry.problem = str(exc)
            return entry
        errors = (decoded - images) ** 2
        entry.public_cost = float(errors[:PUBLIC_IMAGES].mean())
        entry.private_cost = float(errors[PUBLIC_IMAGES:].mean())
        entry.picture = decoded[:SHOWN_IMAGES].astype(np.float32)
        entry.stage = "scored"
        return entry

    def retrain(self, track: str, submitted_cost: float, context: Scoring) -> RetrainResult:
        """Retrain from fresh initialisation with the entry's own ``train`` on the track's budget of *inverted*
        images (circles 0 on a background of 1), and score it on the inverted hidden images.

        It reproduces when that cost is within ``context.retrain_band`` (by default :attr:`retrain_band`: at most
        ``submitted * 1.5 + 0.0005``).  Learning from the
        images it is given, an honest ``train`` does about as well on inverted circles; weights replayed
        from the source, or trained on circles the ``train`` drew itself, do not fit inverted images.  The
        same network trained on 3.3 times the budget comes out about 45 % lower than retraining gives,
        well outside the band.
        """
        code_limit, budget = autoencoder.parse_track(track)
        band = context.retrain_band or self.retrain_band
        assert band is not None
        seed = 0
        kernel = context.fresh_kernel([ARCHITECTURE_CELL, TRAINING_CELL])
        try:
            raw = kernel.call("mlphys_retrain", code_limit, budget, seed, True, what="train", saw_hidden_data=False)
            if not isinstance(raw, dict) or not isinstance(raw.get("images_used"), int):
                raise EntryProblem("retraining handed back something other than trained weights")
            if raw["images_used"] > budget:
                raise EntryProblem(f"training took {raw['images_used']} images from a budget of {budget}")
            state = plain_state(
                {"encoder": raw.get("encoder"), "decoder": raw.get("decoder")}, "the retrained weights",
                self.weights_parts, self.max_parameters,
            )
            scored = self.score(track, state, context, inverted=True)
        except TimeUp as exc:
            return RetrainResult("timed out", None, f"the check did not finish within its time limit ({exc})")
        except EntryProblem as exc:
            return RetrainResult("flagged", None, f"Retraining failed: {exc}")
        if scored.public_cost is None:
            return RetrainResult("flagged", None, f"The retrained entry could not be scored: {scored.problem}")
        if band.reproduces(scored.public_cost, submitted_cost):
            return RetrainResult("reproduced", scored.public_cost, f"retrained cost {scored.public_cost:.4f}")
        limit = band.limit(submitted_cost)
        return RetrainResult(
            "flagged",
            scored.public_cost,
            f"retrained within the budget the cost is {scored.public_cost:.4f}, not {submitted_cost:.4f} "
            f"(allowed up to {limit:.4f})",
        )

    def page_originals(self, secret: str) -> np.ndarray:
        return hidden_images(secret)["public"][:SHOWN_IMAGES].astype(float)


CHALLENGE = AutoencoderChallenge()


# ---- what the hidden tests assert ------------------------------------------------------------------


def expect_valid_codes(entry: Scored) -> None:
    """The weights load, and the encoder gives at most k finite numbers per image."""
    if entry.stage in ("weights", "encoder"):
        raise AssertionError(entry.problem or "Your entry could not be scored.")


def expect_valid_images(entry: Scored) -> None:
    """The decoder turns the codes into finite images of the right shape."""
    if entry.stage != "scored":
        raise AssertionError(entry.problem or "Your entry could not be scored.")
