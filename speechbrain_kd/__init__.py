"""speechbrain-kd: knowledge distillation for audio classification.

The reference method is Jung, Heo, Shim, Yu, "Knowledge Distillation in
Acoustic Scene Classification", IEEE Access 8:166870-166879, 2020
(DOI 10.1109/ACCESS.2020.3021711).
"""

__version__ = "0.1.0"
