"""HTML report (grappa_like/report.py, ``grappa-like report``, ``parameterize --report``).

The page itself is rendered in headless Chromium (Debian's ``chromium``; .ci/run installs it): a
screenshot must be a real, non-blank image, and the DOM after the page's JavaScript ran must show
the name, the depiction, one plot per scanned bond and full tables, sorted / filtered on request.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest
from rdkit import Chem

import grappa_like
from grappa_like import report as report_module
from grappa_like.cli import main

CHROMIUM = shutil.which("chromium")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium not installed (Debian: apt-get install -y chromium)")
SCAN_POINTS = 8
MD_TIME_PS = 0.5


@pytest.fixture(scope="module")
def ethanol(random_model):
    (result,) = grappa_like.parameterize(["CCO"], model=random_model, progress=False)
    result.name = "ethanol"
    return result


@pytest.fixture(scope="module")
def ethanol_page(ethanol, random_model, tmp_path_factory):
    """(Report, path of its HTML page) for ethanol: 2 rotatable bonds, 8 scan points, 0.5 ps of MD."""
    report = report_module.build_report(ethanol, scan_points=SCAN_POINTS, md_time_ps=MD_TIME_PS)
    path = tmp_path_factory.mktemp("report") / "ethanol.html"
    path.write_text(report_module.render_html(report, random_model))
    return report, path


def _chromium(tmp_path, *arguments) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         f"--user-data-dir={tmp_path / 'chromium-profile'}", *arguments],
        capture_output=True, text=True, timeout=120, check=True)


def _dom(tmp_path, path, query: str = "") -> str:
    return _chromium(tmp_path, "--dump-dom", f"file://{path}{query}").stdout


def _body_rows(dom: str, table_id: str) -> list[str]:
    table = re.search(rf'<table id="{table_id}".*?<tbody>(.*?)</tbody>', dom, re.S).group(1)
    return re.findall(r"<tr[^>]*>.*?</tr>", table, re.S)


# ----------------------------------------------------------------------------- the pieces


def test_charge_colours_follow_the_signs_of_the_charges():
    colours = np.array(report_module.charge_colours([-0.6, -0.3, 0.0, 0.3, 0.6]))
    red, blue = colours[:, 0], colours[:, 2]
    assert np.all(red[:2] > blue[:2]) and np.all(blue[3:] > red[3:])  # negative red, positive blue
    assert np.allclose(colours[2], 1.0)                                 # zero is white
    assert np.allclose(colours[0], report_module.NEGATIVE_COLOUR)       # the largest |q| gets the full colour
    assert np.allclose(colours[4], report_module.POSITIVE_COLOUR)
    assert colours[1].min() > colours[0].min()                          # smaller |q|: paler


def test_rotatable_bonds_found():
    def count(smiles):
        return len(report_module.rotatable_torsions(Chem.AddHs(Chem.MolFromSmiles(smiles))))

    assert count("CCO") == 2        # C-C (methyl rotor) and C-O (hydroxyl rotor)
    assert count("CCCC") == 3
    assert count("c1ccccc1") == 0   # ring bonds and bonds to hydrogen do not rotate
    assert count("CC#CC") == 0      # nor bonds to an sp carbon


def test_relaxed_scan_reports_the_force_field_energy_without_the_restraint(ethanol_page):
    report, _ = ethanol_page
    scan = report.scans[1]  # C1-O2, the hydroxyl rotor
    assert np.allclose(scan.angles_deg, -180.0 + 45.0 * np.arange(SCAN_POINTS))
    mm = scan.energies[report_module.MM_LABEL]
    assert mm.min() == 0.0 and np.all(np.isfinite(mm))
    system = report.result.to_openmm()
    plain = report_module._system_energies(system, scan.positions)
    assert np.allclose(mm, plain - plain.min(), atol=1e-6)  # the restraint's energy is left out
    reached = [Chem.rdMolTransforms.GetDihedralDeg(_conformer(positions), *scan.dihedral)
               for positions in scan.positions]
    difference = (np.array(reached) - scan.angles_deg + 180.0) % 360.0 - 180.0
    assert np.abs(difference).max() < 2.0  # the restraint holds the dihedral at its target


def _conformer(positions):
    conformer = Chem.Conformer(len(positions))
    for index, xyz in enumerate(positions):
        conformer.SetAtomPosition(index, xyz.tolist())
    return conformer


def test_every_curve_starts_from_zero_and_references_are_named(ethanol_page):
    report, _ = ethanol_page
    assert len(report.scans) == report.n_rotatable == 2
    for scan in report.scans:
        assert scan.energies and list(scan.energies)[0] == report_module.MM_LABEL
        for energies in scan.energies.values():
            assert len(energies) == SCAN_POINTS and np.nanmin(energies) == 0.0
    names = set(report.scans[0].energies)
    for name in names - {report_module.MM_LABEL}:
        assert any(note.startswith(name) for note in report.notes)


def test_scans_are_capped_and_the_page_says_so(random_model):
    (result,) = grappa_like.parameterize(["CCCC"], model=random_model, progress=False)
    report = report_module.build_report(result, scan_points=4, max_scans=1, qm=False, gaff2=False, md_time_ps=0)
    assert report.n_rotatable == 3 and len(report.scans) == 1
    assert report.scans[0].dihedral[1:3] == (1, 2)  # the C-C-C-C bond first, methyl rotors after
    page = report_module.render_html(report)
    assert "3 rotatable bonds found" in page and "1 scanned (at most 1 per report" in page
    assert page.count('class="scan-plot"') == 1
    assert "MD check turned off" in page
    assert "GFN2-xTB reference turned off" in page and "GAFF2 reference turned off" in page


def test_tables_hold_every_parameter_in_report_units(ethanol):
    tables = {table.id: table for table in report_module.parameter_tables(ethanol.molecule, ethanol.parameters)}
    parameters, interactions = ethanol.parameters, ethanol.parameters.interactions
    assert [len(tables[key].rows) for key in ("bonds", "angles", "propers", "impropers", "atoms")] == [
        len(interactions.bonds), len(interactions.angles), len(interactions.propers), len(interactions.impropers), 9]
    assert tables["bonds"].headers == ["#", "atoms", "k (kcal/mol/Å²)", "r0 (Å)"]
    assert tables["bonds"].rows[0][1] == "C0-C1"
    assert np.allclose([row[3] for row in tables["bonds"].rows], parameters.bond_r0 * 10.0)
    assert np.allclose([row[2] for row in tables["bonds"].rows], parameters.bond_k / 4.184 / 100.0)
    assert np.allclose([row[3] for row in tables["angles"].rows], np.degrees(parameters.angle_theta0))
    periodicities = parameters.proper_k.shape[1]
    assert len(tables["propers"].headers) == 2 + 2 * periodicities
    for row, signed in zip(tables["propers"].rows, parameters.proper_k):
        assert np.allclose(row[2::2], np.abs(signed) / 4.184)
        assert row[3::2] == [0 if kappa >= 0 else 180 for kappa in signed]
    assert np.allclose([row[2] for row in tables["atoms"].rows], parameters.charges)
    assert [row[3] for row in tables["atoms"].rows] == list(parameters.lj_types)


def test_depiction_has_atom_indices_and_charge_colours(ethanol):
    svg = report_module.depiction_svg(ethanol.molecule, ethanol.parameters.charges)
    assert svg.startswith("<svg")
    fills = np.array([[int(code[i:i + 2], 16) for i in (0, 2, 4)]
                      for code in set(re.findall(r"fill:#([0-9A-Fa-f]{6})", svg))])
    for colour in report_module.charge_colours(ethanol.parameters.charges):  # every atom's colour is drawn
        assert np.abs(fills - 255 * np.array(colour)).max(axis=1).min() <= 1.0
    assert sorted(set(int(i) for i in re.findall(r"class='atom-(\d+)", svg))) == list(range(9))  # H drawn too
    assert svg.count("class='note'") == 9  # one atom-index label per atom


def test_page_is_self_contained(ethanol_page):
    _, path = ethanol_page
    page = path.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page)
    assert "<link" not in page and "@import" not in page
    assert page.count('src="data:image/png;base64,') == 2


def test_md_check_section(ethanol_page):
    report, path = ethanol_page
    assert report.md["simulated_ps"] == pytest.approx(MD_TIME_PS) or report.md["status"] == "blow-up"
    page = path.read_text()
    assert 'id="md-verdict"' in page and f"{MD_TIME_PS:g} ps NVT Langevin MD at 300 K" in page


def test_out_of_domain_score_is_shown_when_the_result_has_one(ethanol_page):
    report, _ = ethanol_page
    assert "out-of-domain score</td><td>not available" in report_module.render_html(report)
    report.result.ood_score = 0.123
    try:
        assert "0.123 kcal/mol/Å" in report_module.render_html(report)
    finally:
        report.result.ood_score = None


def test_a_molecule_that_cannot_be_parameterized_gives_one_error_naming_it(random_model, tmp_path):
    with pytest.raises(grappa_like.errors.MoleculeInputError, match="C1CC"):
        report_module.write_report("C1CC", tmp_path / "x.html", model=random_model)
    assert not (tmp_path / "x.html").exists()


# ----------------------------------------------------------------------------- rendered in Chromium


@needs_chromium
def test_chromium_screenshot_is_a_real_page(ethanol_page, tmp_path):
    from matplotlib import pyplot

    _, path = ethanol_page
    screenshot = tmp_path / "page.png"
    _chromium(tmp_path, f"--screenshot={screenshot}", "--window-size=1200,3000", f"file://{path}")
    image = pyplot.imread(screenshot)[:, :, :3]
    assert image.shape[:2] == (3000, 1200)
    dark = image.mean(axis=2) < 0.5
    assert dark.mean() > 0.005                                   # text and lines, not a blank page
    assert dark[:200].any() and dark[1500:].any()                 # content at the top and far down
    colourful = (image.max(axis=2) - image.min(axis=2)) > 0.3
    assert colourful.sum() > 2000                                 # charge colours and plot curves


@needs_chromium
def test_chromium_dom_shows_name_depiction_plots_and_tables(ethanol_page, ethanol, tmp_path):
    _, path = ethanol_page
    dom = _dom(tmp_path, path)
    assert 'data-ready="yes"' in dom  # the page's script ran to its end
    assert re.search(r'<h1 id="molecule-name">ethanol</h1>', dom)
    assert re.search(r'<div id="depiction"><svg', dom)
    assert len(re.findall(r'<img class="scan-plot"[^>]*src="data:image/png;base64,', dom)) == 2
    interactions = ethanol.parameters.interactions
    for table_id, count in (("bonds", len(interactions.bonds)), ("angles", len(interactions.angles)),
                            ("propers", len(interactions.propers)), ("atoms", 9)):
        assert len(_body_rows(dom, table_id)) == count
        assert f'id="{table_id}-count">{count} rows' in dom
    assert len(_body_rows(dom, "md-check")) >= 5


@needs_chromium
def test_chromium_sorts_and_filters_tables(ethanol_page, ethanol, tmp_path):
    _, path = ethanol_page
    dom = _dom(tmp_path, path, "?sort=bonds:3:desc&sort=atoms:2&filter=angles:H8")
    r0 = [float(re.search(r'data-value="([^"]+)"', _cell_tags(row)[3]).group(1))
          for row in _body_rows(dom, "bonds")]
    assert r0 == sorted(ethanol.parameters.bond_r0 * 10.0, reverse=True)
    charges = [float(re.search(r'data-value="([^"]+)"', _cell_tags(row)[2]).group(1))
               for row in _body_rows(dom, "atoms")]
    assert charges == sorted(ethanol.parameters.charges)
    assert re.search(r'<th[^>]*aria-sort="descending"[^>]*>r0 \(Å\)</th>', dom)
    angle_rows = _body_rows(dom, "angles")
    shown = [row for row in angle_rows if "display: none" not in row]
    assert len(shown) == 1 and "C1-O2-H8" in shown[0]  # the only angle with the hydroxyl hydrogen
    assert f'id="angles-count">1 of {len(angle_rows)} rows' in dom


def _cell_tags(row: str) -> list[str]:
    return re.findall(r"<td[^>]*>", row)


# ----------------------------------------------------------------------------- command line


def test_cli_report(model_file_path, tmp_path):
    output = tmp_path / "ethanol.html"
    code = main(["report", "--smiles", "CCO", "--name", "ethanol", "-o", str(output), "--model", model_file_path,
                 "--scan-points", "4", "--max-scans", "1", "--no-qm", "--no-gaff2", "--md-time-ps", "0.1"])
    assert code == 0
    page = output.read_text()
    assert '<h1 id="molecule-name">ethanol</h1>' in page and page.count('class="scan-plot"') == 1
    assert model_file_path in page


def test_cli_report_errors_name_the_molecule(model_file_path, tmp_path, caplog):
    output = str(tmp_path / "x.html")
    assert main(["report", "--smiles", "CCO", "--smiles", "CC", "-o", output, "--model", model_file_path]) == 2
    assert main(["report", "--smiles", "C1CC", "-o", output, "--model", model_file_path]) == 2
    assert "mol1" in caplog.text
    with pytest.raises(SystemExit):
        main(["report", "--smiles", "CCO", "-o", output, "--scan-points", "2"])
    assert not (tmp_path / "x.html").exists()


def test_parameterize_writes_a_report_next_to_each_output(model_file_path, tmp_path):
    single = tmp_path / "ethanol.xml"
    options = ["--model", model_file_path, "--report", "--scan-points", "4", "--max-scans", "1", "--no-qm",
               "--no-gaff2", "--md-time-ps", "0"]
    assert main(["parameterize", "--smiles", "CCO", "-o", str(single), *options]) == 0
    assert single.exists() and "scan-plot" in (tmp_path / "ethanol.html").read_text()
    folder = tmp_path / "several"
    assert main(["parameterize", "--smiles", "CCO", "--smiles", "C", "-o", str(folder), *options]) == 0
    assert sorted(p.name for p in folder.iterdir()) == ["failures.tsv", "mol1.html", "mol1.xml", "mol2.html",
                                                        "mol2.xml"]
    assert "No rotatable bonds" in (folder / "mol2.html").read_text()
