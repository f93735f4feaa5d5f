"""What the display draws, with pygame: the window, its layout, images and text (no bus code).

The window has two halves. The left half is the participant's: one stimulus at a time,
centred on a grey background, or a fixation cross between stimuli. The right half is the
experimenter's panel: the latest reconstruction beside the stimulus it reconstructs, with the
trial number, and a few status lines underneath. Drawing in one half never touches the other,
so a reconstruction arriving mid-trial leaves what the participant sees unchanged.

Nothing here flips the display: the node flips, so that it stamps the flip itself.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pygame

PARTICIPANT_BG = (128, 128, 128)
FIXATION = (255, 255, 255)
PANEL_BG = (24, 24, 24)
TEXT = (230, 230, 230)
DIM_TEXT = (150, 150, 150)
TILE_BG = (60, 60, 60)

_SDL_RENDERER_PRESENTVSYNC = 0x4
_SDL_HINT_OVERRIDE = 2
HEADLESS_DRIVERS = ("dummy", "offscreen")

log = logging.getLogger(__name__)


# -- layout ----------------------------------------------------------------------------------
def fit_rect(size: tuple[int, int], area: pygame.Rect) -> pygame.Rect:
    """The largest rect of aspect ratio ``size`` (w, h) centred in ``area``."""
    w, h = size
    scale = min(area.width / w, area.height / h)
    rect = pygame.Rect(0, 0, max(1, round(w * scale)), max(1, round(h * scale)))
    rect.center = area.center
    return rect


@dataclass(frozen=True)
class Layout:
    """Where things go in a window of ``width`` x ``height``.

    Attributes
    ----------
    participant : pygame.Rect
        Left half: what the participant sees.
    stimulus : pygame.Rect
        Square in the middle of ``participant`` where stimuli are drawn.
    panel : pygame.Rect
        Right half: the experimenter's panel.
    header : pygame.Rect
        Top of the panel: trial number and stimulus id of the pair shown.
    panel_stimulus, panel_reconstruction : pygame.Rect
        Two square tiles side by side: a trial's stimulus and its reconstruction.
    captions : pygame.Rect
        Under the tiles: "stimulus", "reconstruction".
    status : pygame.Rect
        Bottom of the panel: status lines.
    """

    width: int
    height: int
    participant: pygame.Rect
    stimulus: pygame.Rect
    panel: pygame.Rect
    header: pygame.Rect
    panel_stimulus: pygame.Rect
    panel_reconstruction: pygame.Rect
    captions: pygame.Rect
    status: pygame.Rect
    font_px: int

    @classmethod
    def for_size(cls, width: int, height: int) -> Layout:
        """Compute the layout of a ``width`` x ``height`` window."""
        half = width // 2
        participant = pygame.Rect(0, 0, half, height)
        side = max(1, int(min(half, height) * 0.8))
        stimulus = pygame.Rect(0, 0, side, side)
        stimulus.center = participant.center
        panel = pygame.Rect(half, 0, width - half, height)
        font_px = max(12, height // 24)
        margin = max(4, panel.width // 30)
        line = int(font_px * 1.2)
        header = pygame.Rect(panel.x + margin, margin, panel.width - 2 * margin, line)
        tile = max(1, min((panel.width - 3 * margin) // 2, height // 2))
        top = header.bottom + margin // 2
        panel_stimulus = pygame.Rect(panel.x + margin, top, tile, tile)
        panel_reconstruction = pygame.Rect(panel_stimulus.right + margin, top, tile, tile)
        captions = pygame.Rect(panel.x + margin, panel_stimulus.bottom + 2, header.width, line)
        status_top = captions.bottom + margin
        status = pygame.Rect(
            panel.x + margin, status_top, header.width, max(1, height - status_top - margin)
        )
        return cls(
            width,
            height,
            participant,
            stimulus,
            panel,
            header,
            panel_stimulus,
            panel_reconstruction,
            captions,
            status,
            font_px,
        )


# -- images ----------------------------------------------------------------------------------
def image_to_surface(image: np.ndarray) -> pygame.Surface:
    """A pygame surface holding a copy of one ``(H, W, 3)`` uint8 RGB image.

    Raises
    ------
    ValueError
        The array is not ``(H, W, 3)`` uint8.
    """
    a = np.asarray(image)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3 or 0 in a.shape:
        raise ValueError(f"expected a (H, W, 3) uint8 image, got {a.dtype} {a.shape}")
    h, w = a.shape[:2]
    return pygame.image.frombytes(np.ascontiguousarray(a).tobytes(), (w, h), "RGB")


def scaled(surface: pygame.Surface, area: pygame.Rect) -> pygame.Surface:
    """``surface`` scaled (smoothly, keeping its aspect) to fit ``area``, in the display format.

    A surface that already has the fitted size is not resampled, so its pixels stay exact.
    """
    size = fit_rect(surface.get_size(), area).size
    if surface.get_size() != size:
        surface = pygame.transform.smoothscale(surface, size)
    if pygame.display.get_init() and pygame.display.get_surface() is not None:
        surface = surface.convert()  # blits of display-format surfaces are the fast path
    return surface


# -- drawing ---------------------------------------------------------------------------------
class Screen:
    """Draws the participant's area and the experimenter's panel onto one surface.

    Parameters
    ----------
    target : pygame.Surface
        The display surface, or any surface (tests draw off-screen).
    """

    def __init__(self, target: pygame.Surface) -> None:
        if not pygame.font.get_init():
            pygame.font.init()
        self.target = target
        self.layout = Layout.for_size(*target.get_size())
        self.font = pygame.font.Font(None, self.layout.font_px)

    def prepare_stimulus(self, image: np.ndarray) -> tuple[pygame.Surface, pygame.Surface]:
        """Convert a stimulus image once: (participant-size surface, panel-tile thumbnail)."""
        surface = image_to_surface(image)
        return scaled(surface, self.layout.stimulus), scaled(surface, self.layout.panel_stimulus)

    def prepare_reconstruction(self, image: np.ndarray) -> pygame.Surface:
        """Convert a reconstruction image to a panel tile."""
        return scaled(image_to_surface(image), self.layout.panel_reconstruction)

    def clear(self) -> None:
        """Paint both halves with their backgrounds."""
        self.target.fill(PARTICIPANT_BG, self.layout.participant)
        self.target.fill(PANEL_BG, self.layout.panel)
        for tile in (self.layout.panel_stimulus, self.layout.panel_reconstruction):
            self.target.fill(TILE_BG, tile)

    def draw_stimulus(self, surface: pygame.Surface) -> None:
        """Show a prepared stimulus in the participant's area."""
        self.target.fill(PARTICIPANT_BG, self.layout.participant)
        self.target.blit(surface, fit_rect(surface.get_size(), self.layout.stimulus))

    def draw_blank(self) -> None:
        """Show the fixation cross in the participant's area."""
        area = self.layout.participant
        self.target.fill(PARTICIPANT_BG, area)
        arm = max(4, self.layout.stimulus.width // 24)
        width = max(2, arm // 4)
        cx, cy = area.center
        pygame.draw.line(self.target, FIXATION, (cx - arm, cy), (cx + arm, cy), width)
        pygame.draw.line(self.target, FIXATION, (cx, cy - arm), (cx, cy + arm), width)

    def draw_message(self, text: str) -> None:
        """Show a line of text in the middle of the participant's area (e.g. while waiting)."""
        area = self.layout.participant
        self.target.fill(PARTICIPANT_BG, area)
        rendered = self.font.render(text, True, TEXT)
        self.target.blit(rendered, rendered.get_rect(center=area.center))

    def draw_pair(
        self,
        title: str,
        stimulus: pygame.Surface | None,
        reconstruction: pygame.Surface,
        captions: tuple[str, str] = ("stimulus", "reconstruction"),
    ) -> None:
        """Show a stimulus and its reconstruction side by side in the experimenter's panel.

        Parameters
        ----------
        title : str
            Header line, e.g. ``"trial 12 · face-0012 (test)"``.
        stimulus : pygame.Surface or None
            The prepared stimulus thumbnail (None leaves its tile empty).
        reconstruction : pygame.Surface
            The prepared reconstruction tile.
        captions : tuple of str
            Captions under the left and the right tile.
        """
        lay = self.layout
        self.target.fill(PANEL_BG, lay.header)
        self._text(title, lay.header.topleft, TEXT)
        for tile, surface in (
            (lay.panel_stimulus, stimulus),
            (lay.panel_reconstruction, reconstruction),
        ):
            self.target.fill(TILE_BG, tile)
            if surface is not None:
                self.target.blit(surface, fit_rect(surface.get_size(), tile))
        self.target.fill(PANEL_BG, lay.captions)
        self._text(captions[0], (lay.panel_stimulus.x, lay.captions.y), DIM_TEXT)
        self._text(captions[1], (lay.panel_reconstruction.x, lay.captions.y), DIM_TEXT)

    def draw_status(self, lines: Sequence[str]) -> None:
        """Show status lines at the bottom of the experimenter's panel."""
        area = self.layout.status
        self.target.fill(PANEL_BG, area)
        step = int(self.layout.font_px * 1.1)
        for i, line in enumerate(lines):
            y = area.y + i * step
            if y + step > area.bottom:
                break
            self._text(line, (area.x, y), DIM_TEXT)

    def _text(self, text: str, topleft: tuple[int, int], color: tuple[int, int, int]) -> None:
        self.target.blit(self.font.render(text, True, color), topleft)


# -- the window ------------------------------------------------------------------------------
@dataclass
class Window:
    """The opened display surface and how it was obtained.

    Attributes
    ----------
    surface : pygame.Surface
        The display surface (``width`` x ``height`` logical pixels).
    driver : str
        SDL video driver in use.
    vsync : bool
        True when the renderer reports vsync, so that ``display.flip()`` waits for vblank.
    headless : bool
        True on SDL's dummy / offscreen drivers: nothing is visible.
    """

    surface: pygame.Surface
    driver: str
    vsync: bool
    headless: bool


def open_window(
    width: int,
    height: int,
    *,
    fullscreen: bool = False,
    vsync: bool = True,
    caption: str = "bci display",
) -> Window:
    """Open the display window, with vsync where the driver gives it, headless if it must.

    Headless drivers (``dummy``, ``offscreen``) never get vsync: nothing is shown, so there is
    no refresh to wait for.

    vsync needs pygame's ``SCALED`` mode (an SDL renderer); a windowed ``SCALED`` window may be
    enlarged by an integer factor on a large desktop (the canvas stays ``width`` x ``height``).
    If vsync cannot be had, the window opens without it (logged). If no display can be opened
    at all, SDL's ``dummy`` driver is selected through an SDL hint (the environment is left
    alone) and the session runs headless (logged as a warning).

    Parameters
    ----------
    width, height : int
        Canvas size in pixels.
    fullscreen : bool
        Full screen (at the desktop resolution, the canvas scaled to fit) or a window.
    vsync : bool
        Ask for vsync.
    caption : str
        Window title.

    Returns
    -------
    Window
    """
    flags = pygame.FULLSCREEN if fullscreen else 0
    try:
        pygame.display.init()
        if pygame.display.get_driver() == "offscreen" and not os.environ.get("SDL_VIDEODRIVER"):
            # SDL falls back to its offscreen (EGL) driver when there is no display; nothing is
            # shown either way, and the dummy driver flips in microseconds instead of ~5 ms.
            pygame.display.quit()
            if _select_dummy_driver():
                log.info("no display: using SDL's dummy video driver rather than offscreen")
            pygame.display.init()
        # Headless drivers have no refresh to sync to; their "vsync" would only add a wait.
        vsync = vsync and pygame.display.get_driver() not in HEADLESS_DRIVERS
        surface, synced = _set_mode((width, height), flags, vsync)
    except pygame.error as err:
        pygame.display.quit()
        if not _select_dummy_driver():
            raise
        log.warning(
            "no display could be opened (%s); using SDL's dummy video driver: the session "
            "runs headless, nothing is shown",
            err,
        )
        pygame.display.init()
        surface, synced = _set_mode((width, height), 0, False)
    driver = pygame.display.get_driver()
    headless = driver in HEADLESS_DRIVERS
    if headless:
        log.warning("video driver %r: the session runs headless (nothing is visible)", driver)
    pygame.display.set_caption(caption)
    pygame.mouse.set_visible(not fullscreen)
    log.info(
        "video driver %s, canvas %dx%d, window %s, vsync %s",
        driver,
        width,
        height,
        pygame.display.get_window_size(),
        "on" if synced else "off",
    )
    return Window(surface, driver, synced, headless)


def _set_mode(size: tuple[int, int], flags: int, vsync: bool) -> tuple[pygame.Surface, bool]:
    """``display.set_mode`` with vsync if possible; pygame.error only if no mode can be set."""
    if vsync:
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                surface = pygame.display.set_mode(size, flags | pygame.SCALED, vsync=1)
            problem = _vsync_problem()
            if problem is None:
                return surface, True
            problem = "; ".join([problem, *(str(w.message) for w in caught)])
        except pygame.error as err:
            problem = str(err)
        log.warning(
            "vsync unavailable on video driver %r (%s); flipping without vsync",
            pygame.display.get_driver() if pygame.display.get_init() else "?",
            problem,
        )
    return pygame.display.set_mode(size, flags), False


def _vsync_problem() -> str | None:
    """Why the renderer behind the display does not flip on the vblank; None if it does.

    SDL's software renderer accepts the vsync flag but only *simulates* it (it sleeps to pace
    presents, unrelated to the display's refresh), so it does not count as vsync here.
    """
    info_fn = getattr(pygame.display, "_get_renderer_info", None)  # provisional pygame API
    if info_fn is None:
        return None  # cannot tell: trust the request
    info = info_fn()
    if not info:
        return "no renderer"
    name, flags = info[0], int(info[1])
    if name == "software":
        return "only SDL's software renderer, whose vsync is simulated"
    if not flags & _SDL_RENDERER_PRESENTVSYNC:
        return f"renderer {name!r} does not present with vsync"
    return None


def _select_dummy_driver() -> bool:
    """Make SDL's next video init use the dummy driver via an SDL hint; False if impossible."""
    sdl = _loaded_sdl()
    if sdl is None:
        return False
    set_hint = sdl.SDL_SetHintWithPriority
    set_hint.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int]
    set_hint.restype = ctypes.c_int
    return bool(set_hint(b"SDL_VIDEODRIVER", b"dummy", _SDL_HINT_OVERRIDE))


def _loaded_sdl() -> ctypes.CDLL | None:
    """The SDL2 library pygame has loaded into this process, or None if it cannot be found."""
    candidates: list[str] = []
    maps = Path("/proc/self/maps")
    if maps.is_file():
        for line in maps.read_text().splitlines():
            path = line.split(maxsplit=5)[-1] if line.count(" ") >= 5 else ""
            name = os.path.basename(path)
            if name.startswith("libSDL2") and "SDL2_" not in name and path not in candidates:
                candidates.append(path)
    package = Path(pygame.__file__).parent
    for folder, pattern in (
        (package.parent / "pygame.libs", "libSDL2-*"),  # Linux wheels
        (package / ".dylibs", "libSDL2*"),  # macOS wheels
        (package, "SDL2.dll"),  # Windows wheels
    ):
        candidates += [str(p) for p in sorted(folder.glob(pattern)) if "SDL2_" not in p.name]
    system = ctypes.util.find_library("SDL2")
    if system:
        candidates.append(system)
    mode = getattr(os, "RTLD_NOLOAD", 0) | getattr(os, "RTLD_LOCAL", 0)
    for path in candidates:
        try:
            lib = ctypes.CDLL(path, mode=mode)
        except OSError:
            continue
        if hasattr(lib, "SDL_SetHintWithPriority"):
            return lib
    return None
