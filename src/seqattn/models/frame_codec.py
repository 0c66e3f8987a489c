"""The frame codec shared by TAP and H-TAP: a strided convolutional encoder (frame -> latent z_t)
and its mirror decoder (latent -> frame in [0, 1]).

Both latent predictors use the same codec class with the same sizes, so the only difference
between them is the latent transition. The layout follows the DCGAN-style encoders of latent
video predictors (Denton & Fergus, 2018, SVG; Hafner et al., 2019, PlaNet): stride-2 3x3
convolutions halve the frame until it is 4x4, a dense layer maps the
flattened features to the latent vector, and the decoder runs the same path backwards with
stride-2 transposed convolutions and a sigmoid, since Moving MNIST pixels lie in [0, 1].

Optional skip features (`skip_features=True`, SVG's skip connections): the encoder also returns
the feature map of every convolution, and the decoder concatenates the map of the same
resolution to the input of each transposed convolution (SVG's `torch.cat([d, skip[i]], 1)`).
The predictors feed the decoder the maps of the last observed frame, so static appearance
reaches the decoder without passing through the latent bottleneck.
"""

import keras
from keras import ops


def _check_frame_size(frame_size: int, n_levels: int) -> None:
    if frame_size % (2**n_levels):
        raise ValueError(
            f"frame_size={frame_size} must be divisible by 2**len(filters) = {2**n_levels}"
        )


@keras.saving.register_keras_serializable(package="seqattn")
class FrameEncoder(keras.layers.Layer):
    """(N, H, W, C) frames -> (N, latent_dim) latents.

    With skip_features, returns (latents, skips): skips holds the output of every convolution,
    from high to low resolution, (N, H/2, W/2, filters[0]) ... (N, H/2**L, W/2**L, filters[-1]).

    Args:
        latent_dim: size of z_t.
        filters: channels of the stride-2 convolutions, one per halving of the frame.
        frame_size: H = W of the frames (64 for Moving MNIST).
        skip_features: also return the intermediate feature maps.
    """

    def __init__(self, latent_dim: int = 128, filters=(16, 32, 64, 64), frame_size: int = 64,
                 skip_features: bool = False, **kwargs):
        super().__init__(**kwargs)
        if int(latent_dim) < 1:
            raise ValueError(f"latent_dim must be a positive integer; got {latent_dim}")
        _check_frame_size(frame_size, len(filters))
        self.latent_dim = int(latent_dim)
        self.filters = tuple(int(f) for f in filters)
        self.frame_size = int(frame_size)
        self.skip_features = bool(skip_features)
        self.convs = [
            keras.layers.Conv2D(f, 3, strides=2, padding="same", activation="relu", name=f"conv{i}")
            for i, f in enumerate(self.filters)
        ]
        self.flatten = keras.layers.Flatten()
        self.project = keras.layers.Dense(self.latent_dim, name="to_latent")

    def build(self, input_shape):
        shape = tuple(input_shape)
        for conv in self.convs:
            conv.build(shape)
            shape = conv.compute_output_shape(shape)
        self.project.build((shape[0], shape[1] * shape[2] * shape[3]))

    def call(self, frames):
        x, skips = frames, []  # (N, H, W, C)
        for conv in self.convs:
            x = conv(x)  # halves H and W: (N, H/2**(i+1), W/2**(i+1), filters[i])
            skips.append(x)
        latents = self.project(self.flatten(x))  # (N, latent_dim)
        return (latents, skips) if self.skip_features else latents

    def compute_output_shape(self, input_shape):
        latents = (input_shape[0], self.latent_dim)
        if not self.skip_features:
            return latents
        skips = [(input_shape[0], self.frame_size // 2 ** (i + 1), self.frame_size // 2 ** (i + 1), f)
                 for i, f in enumerate(self.filters)]
        return latents, skips

    def get_config(self):
        return {
            **super().get_config(),
            "latent_dim": self.latent_dim,
            "filters": list(self.filters),
            "frame_size": self.frame_size,
            "skip_features": self.skip_features,
        }


@keras.saving.register_keras_serializable(package="seqattn")
class FrameDecoder(keras.layers.Layer):
    """(N, latent_dim) latents -> (N, H, W, channels) frames in [0, 1] (sigmoid).

    With skip_features, `call(latents, skips)` takes the encoder's skips (high to low resolution)
    and concatenates each to the input of the transposed convolution at its resolution.

    Args:
        filters: the encoder's filters; the decoder walks them backwards.
        frame_size: H = W of the frames.
        channels: channels of the output frames.
        skip_features: take the encoder's feature maps as a second input.
    """

    def __init__(self, filters=(16, 32, 64, 64), frame_size: int = 64, channels: int = 1,
                 skip_features: bool = False, **kwargs):
        super().__init__(**kwargs)
        _check_frame_size(frame_size, len(filters))
        self.filters = tuple(int(f) for f in filters)
        self.frame_size = int(frame_size)
        self.channels = int(channels)
        self.skip_features = bool(skip_features)
        self.base = self.frame_size // 2 ** len(self.filters)  # 4 for 64x64 frames and 4 levels
        self.project = keras.layers.Dense(self.base * self.base * self.filters[-1], activation="relu", name="from_latent")
        # Upsample back through the encoder's widths: 64 -> 64 -> 32 -> 16 -> output channels.
        widths = list(reversed(self.filters[:-1])) + [self.channels]
        self.deconvs = [
            keras.layers.Conv2DTranspose(
                w, 3, strides=2, padding="same",
                activation="sigmoid" if i == len(widths) - 1 else "relu", name=f"deconv{i}",
            )
            for i, w in enumerate(widths)
        ]

    def build(self, input_shape):
        self.project.build(tuple(input_shape))
        shape = (input_shape[0], self.base, self.base, self.filters[-1])
        # deconv i runs at the resolution of encoder level L-1-i, whose skip has filters[L-1-i] channels
        for deconv, skip_channels in zip(self.deconvs, reversed(self.filters)):
            if self.skip_features:
                shape = (*shape[:-1], shape[-1] + skip_channels)
            deconv.build(shape)
            shape = deconv.compute_output_shape(shape)

    def call(self, latents, skips=None):
        if self.skip_features and skips is None:
            raise ValueError("this decoder was built with skip_features=True and needs the encoder's skips")
        x = self.project(latents)  # (N, base*base*F)
        x = ops.reshape(x, (-1, self.base, self.base, self.filters[-1]))  # (N, 4, 4, F)
        for i, deconv in enumerate(self.deconvs):
            if self.skip_features:
                x = ops.concatenate([x, skips[-1 - i]], axis=-1)  # (N, h, w, c + filters[L-1-i])
            x = deconv(x)  # doubles H and W
        return x  # (N, H, W, channels)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.frame_size, self.frame_size, self.channels)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": list(self.filters),
            "frame_size": self.frame_size,
            "channels": self.channels,
            "skip_features": self.skip_features,
        }
