"""The model: load the shipped default (or a checkpoint) in the background, choose another, show its card."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QFileDialog, QPlainTextEdit, QVBoxLayout

from galviewer.core.nn.resources import models_dir
from galviewer.core.restore.engine import Restorer

if TYPE_CHECKING:
    from galviewer.qt.main_window import MainWindow

__all__ = ["ModelController"]


class ModelController:
    """Owns the ``model`` channel and Help ▸ About."""

    def __init__(self, window: MainWindow) -> None:
        self.w = window
        self.about: QDialog | None = None
        self.about_text: QPlainTextEdit | None = None

    def load_model(self, path: str | None) -> None:
        """Load the default shipped model (or a checkpoint file) in the background."""
        def job(progress, cancelled):
            if path is None:
                return Restorer.from_pretrained()
            return Restorer.from_file(path)

        self.w.device_label.setText(" loading model…")
        self.w.jobs.submit("model", job)

    def on_loaded(self, restorer: Restorer) -> None:
        """The model is ready: restore the click that waited for it."""
        w = self.w
        w.restorer = restorer
        self.show_model()
        if w.pending_click is not None:
            x, y = w.pending_click
            w.pending_click = None
            w.clicks.restore_at(x, y)

    def choose(self, index: int) -> None:
        text = self.w.model_box.itemText(index)
        if text.endswith("…"):
            path, _ = QFileDialog.getOpenFileName(self.w, "Model checkpoint", str(models_dir()),
                                                  "Checkpoints (*.safetensors *.pth *.pt)")
            if path:
                self.load_model(path)
        else:
            self.load_model(str(models_dir() / f"{text}.safetensors"))

    def show_model(self) -> None:
        w = self.w
        if w.restorer is not None:
            w.device_label.setText(f" {w.restorer.name} on {w.restorer.device.type.upper()} ")
            idx = w.model_box.findText(w.restorer.name)
            if idx >= 0:
                w.model_box.setCurrentIndex(idx)

    def show_about(self) -> None:
        """Help ▸ About: galviewer's version and the model card of the loaded model (a non-modal window)."""
        from galviewer import __version__

        w = self.w
        card = w.restorer.metadata.card() if w.restorer is not None else "No model loaded yet."
        if w.restorer is not None and w.restorer.model_sha256:  # the hash the FITS stamps carry (MODELSHA)
            card += f"\nsha256 of the checkpoint file (FITS MODELSHA): {w.restorer.model_sha256}"
        if self.about is None:
            self.about = QDialog(w)
            self.about.setWindowTitle("About galviewer")
            self.about.resize(820, 420)
            lay = QVBoxLayout(self.about)
            self.about_text = QPlainTextEdit()
            self.about_text.setReadOnly(True)
            lay.addWidget(self.about_text)
            buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
            buttons.rejected.connect(self.about.close)
            lay.addWidget(buttons)
        self.about_text.setPlainText(f"galviewer {__version__} — restoration of HST galaxy images (Park et al. 2024), "
                                     f"with residuals, uncertainty and a quality verdict beside every result.\n\n"
                                     f"{card}")
        self.about.show()
        self.about.raise_()
