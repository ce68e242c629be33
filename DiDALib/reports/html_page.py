"""The DiDA View page's markup and style: static text, filled by ``reports.html`` (``string.Template``; the style
and the script are inserted as values, never parsed as templates). System fonts only: nothing is fetched."""

from string import Template

STYLE = """
:root { color-scheme: dark; }
body { margin: 0; padding: 12px 16px; background: #181818; color: #e6e6e6;
       font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
h1 { font-size: 20px; margin: 0 0 4px; }
h2 { font-size: 15px; margin: 18px 0 6px; }
.run { margin: 0 0 8px; color: #bbb; }
.notice { display: inline-block; margin: 4px 0 10px; padding: 6px 10px; background: #5a1d1d; color: #fff;
          border: 1px solid #c33; font-weight: 600; }
.notice.warning { background: #4a3500; border-color: #c90; }
.controls { display: flex; flex-wrap: wrap; gap: 8px 18px; align-items: center; margin-bottom: 10px; }
.controls fieldset { border: 1px solid #444; padding: 2px 8px; margin: 0; }
.controls legend { padding: 0 4px; color: #aaa; }
.controls input[type=range] { vertical-align: middle; }
#bscan { width: 260px; }
button, select { background: #2a2a2a; color: #eee; border: 1px solid #555; padding: 2px 8px; }
.row { display: flex; gap: 6px; align-items: flex-start; }
.panel { flex: 1 1 0; min-width: 0; }
.caption { height: 20px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.stack { position: relative; line-height: 0; }
.stack canvas { width: 100%; height: auto; display: block; }
.stack canvas.mark { position: absolute; left: 0; top: 0; cursor: crosshair; }
.panel canvas { width: 100%; image-rendering: pixelated; }
.panel select { margin-top: 4px; max-width: 100%; }
#legend, #plot-legend { color: #ccc; margin: 6px 0; }
#legend span, #plot-legend span { margin-right: 14px; white-space: nowrap; }
#legend i, #plot-legend i { display: inline-block; width: 12px; height: 12px; margin-right: 4px; vertical-align: -1px; }
#readout-where { margin: 4px 0; color: #ccc; }
#readout-table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
#readout-table th, #readout-table td { border: 1px solid #3a3a3a; padding: 1px 8px; text-align: right; }
#readout-table th { color: #bbb; font-weight: 500; }
#readout-table td.for { color: #ff8080; }
#readout-table td.against { color: #8cb4ff; }
#plot { display: block; max-width: 100%; background: #202020; cursor: pointer; }
#enface canvas { cursor: pointer; }
#fundus { max-width: 100%; display: block; }
footer { margin-top: 18px; color: #888; font-size: 12px; }
"""

#: The parts a page has only where the run has them: the scores along the volume (more than one B-scan explained)
#: and the en-face evidence (a volume of more than one B-scan).
PLOT = """<h2>Scores along the volume</h2>
<canvas id="plot" width="960" height="170"></canvas>
<div id="plot-legend"></div>"""
ENFACE = Template("""<section id="enface-section">
<h2>En-face evidence</h2>
<p class="run">$enface_text</p>
<div id="enface" class="row"></div>
$fundus
</section>""")

#: The head of every DiDA page (the DiDA View, the audit page): its security policy first, then title and style.
HEAD = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="$policy">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>$title</title>
<style>$style</style>
</head>
<body>
"""

PAGE = Template(HEAD + """<h1>DiDA View</h1>
<p class="run">$run</p>
$notice
<div class="controls">
  <label>B-scan <input type="range" id="bscan" min="0" max="0" step="1" value="0"> <output id="bscan-label"></output></label>
  <span><button id="prev" title="previous B-scan (left arrow)">&#9664;</button>
  <button id="next" title="next B-scan (right arrow)">&#9654;</button></span>
  <fieldset><legend>maps</legend>
    <label><input type="radio" name="view" value="classes" checked> classes</label>
    <label><input type="radio" name="view" value="contrast"> A rather than B</label>
    <label><input type="radio" name="view" value="scale"> feature scale</label></fieldset>
  <fieldset><legend>evidence</legend>
    <label><input type="radio" name="sign" value="both" checked> both</label>
    <label><input type="radio" name="sign" value="for"> for</label>
    <label><input type="radio" name="sign" value="against"> against</label></fieldset>
  <label>opacity <input type="range" id="opacity" min="0" max="1" step="0.05" value="0.85">
    <output id="opacity-label">0.85</output></label>
  <label>square <input type="range" id="square" min="2" max="120" step="1"> <output id="square-label"></output></label>
  <button id="reset-square" title="put the square back on each B-scan's strongest evidence">square: strongest</button>
</div>
<div id="panels" class="row"></div>
<p id="legend"></p>
<p id="readout-where"></p>
<table id="readout-table"></table>
$plot
$enface
<footer>$footer</footer>
<script type="application/json" id="dida-data">$data</script>
<script>$script</script>
</body>
</html>
""")
