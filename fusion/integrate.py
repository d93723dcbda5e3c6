"""Phase 5 of fusion mode: the realized kernels go into the model, and the whole model is checked.

- A Hugging Face architecture: `{model}_fused.py` in the session directory, whose
  `apply_fusions(model) -> model` replaces the forward of every module of a swapped class (every
  RMSNorm, every gated MLP...) of a loaded model with its kernel.
- A user's file: the forward of each swapped class is rewritten (libcst; every other byte kept)
  to call the kernel, beside the source as `{file}_generated.py` or in place, after backups, so
  `akg-op rollback` restores it byte for byte.
Either way a worker first runs the original and the fused model on the same weights and inputs;
nothing reaches the user's folder unless they match.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import libcst as cst

from fusion.analysis import Analysis, Opportunity
from integration.errors import IntegrationError
from integration.integrate import FileChange, place_files
from integration.rewrite import _after_leading_imports, _docstring_statement, _free_name, _marker, _top_level_names
from integration.worker import run_check

STAGING = "fusion_check"


def _swappable(analysis: Analysis, realized: dict[str, str]) -> tuple[list[tuple[Opportunity, str]], list[str]]:
    """(opportunity, kernel path) for each realized kernel that replaces a module's forward (one
    per class: the highest ranked), and why the others are not swapped in."""
    chosen, skipped, classes = [], [], set()
    for opp in analysis.opportunities:
        if opp.name not in realized:
            continue
        if not opp.swap:
            skipped.append(f"{opp.name}: spans module boundaries, kept as a standalone kernel")
        elif opp.swap["class"] in classes:
            skipped.append(f"{opp.name}: {opp.swap['class']} already runs a higher-ranked kernel")
        else:
            classes.add(opp.swap["class"])
            chosen.append((opp, realized[opp.name]))
    return chosen, skipped


# -- Hugging Face: {model}_fused.py ---------------------------------------------------------------


def fused_module_source(analysis: Analysis, chosen: list[tuple[Opportunity, str]], root: str) -> str:
    rows, functions = [], []
    for opp, kernel_path in chosen:
        relative = Path(kernel_path).resolve().relative_to(Path(root).resolve()).as_posix()
        rows.append(f"    ({opp.name!r}, {opp.swap['class']!r}, {relative!r}, _{opp.name}_forward),")
        body = opp.swap["expression"].format(kernel=f"_KERNELS[{opp.name!r}]")
        functions.append(f"def _{opp.name}_forward(self, *args):\n"
                         f'    """{opp.label}: one fused kernel ({" → ".join(opp.ops)})."""\n'
                         f"    return {body}\n")
    names = ", ".join(f"{o.swap['class']} ({o.name})" for o, _ in chosen)
    return (
        f'"""apply_fusions(model) for {analysis.model}: {names}.\n\n'
        "Written by akg-op fusion mode (see fusion_analysis.md and report.md beside this file). Each\n"
        "swapped module keeps its parameters: only its forward runs the fused Triton kernel.\n"
        '"""\n'
        "import importlib.util\n"
        "import os\n"
        "import types\n\n"
        "_HERE = os.path.dirname(os.path.abspath(__file__))\n"
        "_KERNELS = {}\n\n\n"
        + "\n\n".join(functions) +
        "\n\n# (fusion, module class whose forward it replaces, kernel file, forward)\n"
        "FUSIONS = [\n" + "\n".join(rows) + "\n]\n\n\n"
        "def _load_kernel(name, relative_path):\n"
        "    if name not in _KERNELS:\n"
        "        path = os.path.join(_HERE, relative_path)\n"
        "        spec = importlib.util.spec_from_file_location(f\"akg_op_fused_{name}\", path)\n"
        "        module = importlib.util.module_from_spec(spec)\n"
        "        spec.loader.exec_module(module)\n"
        "        _KERNELS[name] = module.ModelNew()\n"
        "    return _KERNELS[name]\n\n\n"
        "def apply_fusions(model):\n"
        '    """Replace the forward of every module of a fused class with its kernel; returns the model."""\n'
        "    for name, class_name, relative_path, forward in FUSIONS:\n"
        "        _load_kernel(name, relative_path)\n"
        "        for module in model.modules():\n"
        "            if type(module).__name__ == class_name:\n"
        "                module.forward = types.MethodType(forward, module)\n"
        "    return model\n"
    )


def _check_fused(analysis: Analysis, chosen: list[tuple[Opportunity, str]], root: str, device: str):
    """Write the fused module to a staging folder and run the whole-model check on it."""
    code = fused_module_source(analysis, chosen, root)
    staged = Path(root) / STAGING / f"{analysis.model}_fused.py"
    shutil.rmtree(staged.parent, ignore_errors=True)
    staged.parent.mkdir()
    staged.write_text(code)
    try:
        # The staged copy sits one folder down: give it the kernels at the same relative paths.
        (staged.parent / "fusions").symlink_to(Path(root).resolve() / "fusions")
        result = run_check("fusion.checks:check_hf_fused",
                           {"fused_path": str(staged), "arch": analysis.model, "dtype": analysis.dtype,
                            "batch": analysis.inputs[0].shape[0] if analysis.inputs[0].shape else 2,
                            "real_tokens": analysis.inputs[0].shape},
                           device=device, timeout_s=900)
    finally:
        shutil.rmtree(staged.parent, ignore_errors=True)
    return code, result


def write_fused_module(analysis: Analysis, realized: dict[str, str], root: str, *,
                       device: str = "cpu") -> tuple[dict, str | None]:
    chosen, skipped = _swappable(analysis, realized)
    if not chosen:
        return {"ok": False, "message": "no realized kernel replaces a whole module: nothing to apply",
                "skipped": skipped}, None
    path = Path(root) / f"{analysis.model}_fused.py"
    code, result = _check_fused(analysis, chosen, root, device)
    if not result.ok and len(chosen) > 1:
        # One kernel that does not fit the model must not cost the others: keep those that pass alone.
        passing = []
        for swap in chosen:
            alone = _check_fused(analysis, [swap], root, device)[1]
            if alone.ok:
                passing.append(swap)
            else:
                skipped.append(f"{swap[0].name}: the model with it alone does not match ({alone.message})")
        if passing:
            chosen = passing
            code, result = _check_fused(analysis, chosen, root, device)
    check = dict(result.value or {"ok": False, "message": result.message})
    check.update(skipped=skipped, swapped=[f"{o.swap['class']} ← {o.name}" for o, _ in chosen])
    if not result.ok:
        check["message"] = f"the fused model does not match the original ({result.message}); {path.name} not written"
        return check, None
    path.write_text(code)
    return check, str(path)


# -- a user's file: rewrite the swapped classes' forwards ------------------------------------------


def _forward_params(function: cst.FunctionDef) -> list[str] | None:
    params = function.params
    if isinstance(params.star_arg, cst.Param) or params.posonly_params:
        return None
    names = [p.name.value for p in params.params]
    return names[1:] if names and names[0] == "self" else None


def rewrite_forwards(source: str, swaps: list[tuple[Opportunity, str]]) -> tuple[str, list[str]]:
    """The source with each swapped class's forward calling its kernel (module, as imported)."""
    module = cst.parse_module(source)
    bound = _top_level_names(module)
    body = list(module.body)
    imports: list[cst.BaseStatement] = []
    notes: list[str] = []
    for opp, kernel_module in swaps:
        index = next((i for i, s in enumerate(body) if isinstance(s, cst.ClassDef)
                      and s.name.value == opp.swap["class"]), None)
        if index is None:
            notes.append(f"{opp.name}: {opp.swap['class']} is not defined in this file; not swapped")
            continue
        node: cst.ClassDef = body[index]
        forward_index = next((i for i, s in enumerate(node.body.body)
                              if isinstance(s, cst.FunctionDef) and s.name.value == "forward"), None)
        params = _forward_params(node.body.body[forward_index]) if forward_index is not None else None
        if params is None or len(params) < opp.swap["arity"]:
            notes.append(f"{opp.name}: {opp.swap['class']}.forward has no plain positional signature; not swapped")
            continue
        kernel_class = _free_name(f"{''.join(p.title() for p in opp.name.split('_'))}Kernel", bound)
        instance = _free_name(f"_{opp.name}_kernel", bound | {kernel_class})
        bound |= {kernel_class, instance}
        imports.append(cst.parse_statement(
            f"from {kernel_module} import ModelNew as {kernel_class}  # akg-op: fused {opp.label}\n"))
        imports.append(cst.parse_statement(f"{instance} = {kernel_class}()\n"))
        expression = re.sub(r"args\[(\d+)\]", lambda m: params[int(m.group(1))],
                            opp.swap["expression"].format(kernel=instance))
        forward: cst.FunctionDef = node.body.body[forward_index]
        new_forward = forward.with_changes(
            body=cst.IndentedBlock(body=[*_docstring_statement(forward),
                                         cst.parse_statement(f"return {expression}\n")]),
            leading_lines=[*forward.leading_lines,
                           _marker(f"fused kernel {kernel_module} ({' → '.join(opp.ops)}); original in backup/")])
        members = list(node.body.body)
        members[forward_index] = new_forward
        body[index] = node.with_changes(body=node.body.with_changes(body=members))
    if imports:
        at = _after_leading_imports(module)
        imports[0] = imports[0].with_changes(leading_lines=[cst.EmptyLine()])
        body[at:at] = imports
    return module.with_changes(body=body).code, notes


def integrate_file_model(analysis: Analysis, realized: dict[str, str], root: str, *, in_place: bool,
                         out_dir: str | None, device: str = "cpu") -> tuple[dict, list[FileChange]]:
    source = Path(analysis.source_file).resolve()
    chosen, skipped = _swappable(analysis, realized)
    if not chosen:
        return {"ok": False, "message": "no realized kernel replaces a whole module of the file: nothing "
                                        "integrated", "skipped": skipped}, []
    if source.is_symlink() or not source.is_file():
        raise IntegrationError(f"cannot rewrite {source}: missing or a symlink")
    text = source.read_bytes().decode("utf-8")
    swaps = [(opp, f"{opp.name}_generated") for opp, _ in chosen]
    code, notes = rewrite_forwards(text, swaps)
    skipped += notes
    swapped = [(opp, path) for opp, path in chosen if not any(n.startswith(f"{opp.name}:") for n in notes)]
    if not swapped:
        return {"ok": False, "message": "no swapped class is defined in the file", "skipped": skipped}, []
    dest = source.parent if in_place or not out_dir else Path(out_dir).resolve()
    integrated = source if in_place else dest / f"{source.stem}_generated.py"
    kernels = [(dest / f"{opp.name}_generated.py", Path(path).read_bytes()) for opp, path in swapped]

    staging = Path(root) / STAGING
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        for path, data in kernels:
            (staging / path.name).write_bytes(data)
        staged = staging / f"{source.stem}_generated.py"
        staged.write_text(code, encoding="utf-8")
        result = run_check("fusion.checks:check_file_fused",
                           {"source_path": str(source), "integrated_path": str(staged),
                            "target": analysis.target, "shapes": [t.shape for t in analysis.inputs],
                            "dtype": analysis.dtype},
                           device=device, timeout_s=900)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    check = dict(result.value or {"ok": False, "message": result.message})
    check.update(skipped=skipped, swapped=[f"{o.swap['class']} ← {o.name}" for o, _ in swapped])
    if not result.ok:
        check["message"] = f"the fused {analysis.target} does not match the original ({result.message}); nothing written"
        return check, []
    planned = [(path, data, "") for path, data in kernels]
    planned.append((integrated, code.encode("utf-8"), "fused kernels: " + ", ".join(o.name for o, _ in swapped)))
    return check, place_files(root, planned)
