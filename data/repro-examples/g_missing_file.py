# (g) The snippet needs the reporter's weights file.
import torch

state = torch.load("checkpoints/best_model.pth")
