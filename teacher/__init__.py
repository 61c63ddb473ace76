"""LesionFuse reference teacher: fused ResNet-34 + DeiT-Small segmentation model (PyTorch + timm)."""
