"""NIfTI label maps and colour tables for 3D Slicer and ITK-SNAP.

    nifti/<id>.nii.gz   2D uint8 label map, values as in labels.json (0 = background)
    nifti/labels.txt    ITK-SNAP label description file (Segmentation > Import Label Descriptions)
    nifti/labels.ctbl   3D Slicer colour table (load it, then pick it as the label map's colours)

Geometry: a radiograph has no patient coordinates, so the map gets the geometry ITK (hence Slicer
and ITK-SNAP) gives the source image itself: voxel (i, j) is column i, row j; origin 0; LPS
direction identity, which in NIfTI's RAS affine is diag(-column spacing, -row spacing). The label
map then lies on the film, upright and not mirrored. Pixel spacing (mm) is in the header (pixdim 1
= column spacing, pixdim 2 = row spacing) when known; unknown spacing is 1 with units 'unknown'.
(Checked with SimpleITK 2.5.7: it reads the map as size (columns, rows), the header's spacing, origin
0, identity direction, pixels equal to labels/<id>.png. Its DICOM reader gives a DX film the
ImagerPixelSpacing, a CR film spacing 1: there the sizes in mm differ, the pixel grid does not.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.colors import to_rgb

from seglib.reporting.plots import structure_color


def write_label_map(path: str | Path, label_map: np.ndarray, spacing_mm: tuple[float, float] | None) -> Path:
    """Write the (rows, columns) label map; `spacing_mm` is (row, column) as DICOM PixelSpacing."""
    import nibabel

    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path}: already exists; refusing to overwrite")
    row_mm, col_mm = spacing_mm or (1.0, 1.0)
    affine = np.diag([-col_mm, -row_mm, 1.0, 1.0])
    image = nibabel.Nifti1Image(np.ascontiguousarray(label_map.astype(np.uint8).T), affine)
    image.header.set_xyzt_units("mm" if spacing_mm else "unknown")
    image.set_qform(affine, code=1)  # scanner-anatomical: the best NIfTI can say of a film
    image.set_sform(affine, code=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    nibabel.save(image, path)
    return path


def write_colour_tables(folder: str | Path, labels: dict[str, int]) -> tuple[Path, Path]:
    """labels.txt (ITK-SNAP) and labels.ctbl (3D Slicer), seglib's fixed colour per structure."""
    folder = Path(folder)
    rgb = {name: [round(255 * c) for c in to_rgb(structure_color(name))] for name in labels}
    itksnap = ["# ITK-SnAP Label Description File (written by seglib)",
               "# IDX  -R-  -G-  -B-  -A-  VIS MSH  LABEL",
               '    0    0    0    0  0.00  0  0  "Clear Label"']
    itksnap += [f'{value:5d} {r:4d} {g:4d} {b:4d}  1.00  1  1  "{name}"'
                for name, value in labels.items() for r, g, b in [rgb[name]]]
    slicer = ["# Color table file written by seglib", f"# {len(labels) + 1} values", "0 background 0 0 0 0"]
    slicer += [f"{value} {name} {r} {g} {b} 255" for name, value in labels.items() for r, g, b in [rgb[name]]]
    folder.mkdir(parents=True, exist_ok=True)
    paths = folder / "labels.txt", folder / "labels.ctbl"
    for path, lines in zip(paths, (itksnap, slicer)):
        path.write_text("\n".join(lines) + "\n")
    return paths
