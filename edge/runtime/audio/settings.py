"""What the voice-command app is told at build time (the manifest's `app` settings, written by
edge/apps/voice_commands.py) and how a run listens (flags, or a caller's own choice): two small typed records."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields


@dataclass(frozen=True)
class Stream:
    """A streaming model's contract: raw audio in steps, states carried from outputs back to inputs."""

    chunk_samples: int  # audio per step
    audio: str  # the raw-audio input
    audio_samples: int  # how much audio that input holds (the last step's chunk at its end)
    states: list[dict]  # [{"input", "output", "shape"}]
    window_samples: int  # the audio each score depends on


@dataclass(frozen=True)
class Enrolment:
    """What enrolling commands needs (edge/runtime/audio/enrol.py): the state output holding the speech
    embedding, and the bundled files: the bank of "not a command" and the commands enrolled at build time."""

    state: str  # a state output [1, K, D]: the embeddings of the window
    bank: str  # file in the bundle: centre [D], negatives [N, D], words [N]
    commands: str | None = None  # file in the bundle, the state folder's format (enrolled.py); None: none


@dataclass(frozen=True)
class VoiceSettings:
    labels: list[str]
    scores: str  # "logits" or "probabilities"
    sample_rate: int
    window_s: float  # scores are judged once this much audio was heard
    hop_s: float
    logmel: str | None  # the log-mel input, if the model has one
    stream: Stream | None
    threshold: float
    thresholds: dict[str, float]
    smooth: int
    refractory_s: float
    model_card: dict | None = None  # parts, licences, attributions: shown by --info, not read here
    builtins: list[str] | None = None  # the model's keywords that are reported; None: all of them
    enrol: Enrolment | None = None  # set when commands can be enrolled on top of the model's own

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> VoiceSettings:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in d.items() if k in known}
        if values.get("stream"):
            values["stream"] = Stream(**values["stream"])
        if values.get("enrol"):
            values["enrol"] = Enrolment(**values["enrol"])
        return cls(**values)

    @property
    def keywords(self) -> list[str]:
        """The model's own commands that are reported."""
        kept = self.builtins
        return [k for k in self.labels if not k.startswith("_") and (kept is None or k in kept)]


@dataclass(frozen=True)
class ListenConfig:
    """One run's choices: the defaults come from the settings, flags or a caller override them."""

    hop_ms: int
    threshold: float
    thresholds: dict[str, float] = field(default_factory=dict)
    smooth: int = 1
    refractory_s: float = 1.0
    verbose: bool = False

    @classmethod
    def defaults(cls, s: VoiceSettings, **overrides) -> ListenConfig:
        base = dict(hop_ms=round(s.hop_s * 1000), threshold=float(s.threshold), thresholds=dict(s.thresholds),
                    smooth=s.smooth, refractory_s=s.refractory_s)
        return cls(**{**base, **overrides})
