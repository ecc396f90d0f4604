# (b) Node conversion: the TorchScript exporter has no symbolic function for aten::linalg_eigh.
import torch


class Spectrum(torch.nn.Module):
    def forward(self, x):
        return torch.linalg.eigh(x @ x.T)[0]


torch.onnx.export(Spectrum(), (torch.randn(4, 4),), "spectrum.onnx", dynamo=False)
