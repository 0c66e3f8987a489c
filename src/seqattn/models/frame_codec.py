"""The frame codec shared by TAP and H-TAP: a convolutional encoder from a frame to a latent
grid z_t (g x g cells of C channels) and its mirror decoder back to a frame in [0, 1].

The latent is a grid, not a vector, so that it keeps position: a digit that moves by a few pixels
moves its code by a fraction of a cell, which a local transition can follow (a 3x3 convolution
in TAP's ConvGRU, spatial mixing in H-TAP). A flat 128-d bottleneck measured otherwise in this
project: it reproduced the mean image, and consecutive latents were nearly unrelated.

- Encoder: stride-2 4x4 convolutions, each with BatchNorm and LeakyReLU(0.2) (the DCGAN layout of
  Radford et al., 2016, also SVG's encoder, Denton & Fergus, 2018), halve the frame once per width;
  a 3x3 convolution at the grid resolution, then a 1x1 convolution to C channels and a tanh, so
  latents lie in (-1, 1) and a closed-loop rollout cannot drift to unbounded codes.
- Decoder: the same path backwards with stride-2 4x4 transposed convolutions, and a 3x3
  convolution with a sigmoid, since Moving MNIST pixels lie in [0, 1].
"""

import keras
from keras import ops


def _conv_block(filters: int, kernel: int, strides: int, name: str, transpose: bool = False) -> keras.Sequential:
    conv = keras.layers.Conv2DTranspose if transpose else keras.layers.Conv2D
    return keras.Sequential([
        conv(filters, kernel, strides=strides, padding="same", use_bias=False, name="conv"),
        # momentum 0.9: the codec trains for a few hundred steps, and the moving statistics that
        # inference uses must have caught up by then (0.99 left them far from the batch ones).
        keras.layers.BatchNormalization(momentum=0.9, name="norm"),
        keras.layers.LeakyReLU(0.2, name="act"),
    ], name=name)


def grid_size(frame_size: int, widths) -> int:
    """Side of the latent grid: the frame halved once per width."""
    levels = len(tuple(widths))
    if levels < 1 or frame_size % (2**levels):
        raise ValueError(f"frame_size={frame_size} must be divisible by 2**len(widths) = {2**levels}")
    return frame_size // 2**levels


@keras.saving.register_keras_serializable(package="seqattn")
class FrameEncoder(keras.layers.Layer):
    """(N, H, W, channels) frames -> (N, g, g, latent_channels) latents in (-1, 1), g = H / 2**len(widths).

    Args:
        latent_channels: C, channels of each latent cell.
        widths: channels of the stride-2 convolutions, one per halving of the frame.
        frame_size: H = W of the frames (64 for Moving MNIST).
    """

    def __init__(self, latent_channels: int = 16, widths=(32, 64), frame_size: int = 64, **kwargs):
        super().__init__(**kwargs)
        if int(latent_channels) < 1:
            raise ValueError(f"latent_channels must be a positive integer; got {latent_channels}")
        self.latent_channels = int(latent_channels)
        self.widths = tuple(int(w) for w in widths)
        self.frame_size = int(frame_size)
        self.grid = grid_size(self.frame_size, self.widths)
        self.downs = [_conv_block(w, 4, 2, f"down{i}") for i, w in enumerate(self.widths)]
        self.mix = _conv_block(self.widths[-1], 3, 1, "mix")
        self.to_latent = keras.layers.Conv2D(self.latent_channels, 1, activation="tanh", name="to_latent")

    def build(self, input_shape):
        shape = tuple(input_shape)
        for block in [*self.downs, self.mix, self.to_latent]:
            block.build(shape)
            shape = block.compute_output_shape(shape)

    def call(self, frames, training=None):
        x = frames  # (N, H, W, channels)
        for block in self.downs:
            x = block(x, training=training)  # halves H and W
        x = self.mix(x, training=training)  # (N, g, g, widths[-1])
        return self.to_latent(x)  # (N, g, g, C)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.grid, self.grid, self.latent_channels)

    def get_config(self):
        return {**super().get_config(), "latent_channels": self.latent_channels, "widths": list(self.widths),
                "frame_size": self.frame_size}


@keras.saving.register_keras_serializable(package="seqattn")
class FrameDecoder(keras.layers.Layer):
    """(N, g, g, latent_channels) latents -> (N, H, W, channels) frames in [0, 1].

    Args:
        widths: the encoder's widths; the decoder walks them backwards.
        frame_size: H = W of the frames.
        channels: channels of the output frames.
    """

    def __init__(self, widths=(32, 64), frame_size: int = 64, channels: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.widths = tuple(int(w) for w in widths)
        self.frame_size = int(frame_size)
        self.channels = int(channels)
        self.grid = grid_size(self.frame_size, self.widths)
        self.mix = _conv_block(self.widths[-1], 3, 1, "mix")
        self.ups = [_conv_block(w, 4, 2, f"up{i}", transpose=True) for i, w in enumerate(reversed(self.widths))]
        self.to_frame = keras.layers.Conv2D(self.channels, 3, padding="same", activation="sigmoid", name="to_frame")

    def build(self, input_shape):
        shape = tuple(input_shape)
        for block in [self.mix, *self.ups, self.to_frame]:
            block.build(shape)
            shape = block.compute_output_shape(shape)

    def call(self, latents, training=None):
        x = self.mix(latents, training=training)  # (N, g, g, widths[-1])
        for block in self.ups:
            x = block(x, training=training)  # doubles H and W
        return self.to_frame(x)  # (N, H, W, channels)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.frame_size, self.frame_size, self.channels)

    def get_config(self):
        return {**super().get_config(), "widths": list(self.widths), "frame_size": self.frame_size,
                "channels": self.channels}


def reconstruct(encoder: FrameEncoder, decoder: FrameDecoder, frames):
    """(N, H, W, channels) -> the codec's reconstruction, inference mode: the floor of every latent model."""
    return decoder(encoder(frames, training=False), training=False)
