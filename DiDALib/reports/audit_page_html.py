"""The audit page's markup and style: static text, filled by ``reports.audit_page`` (``string.Template``; style and
script inserted as values). Colours of shaded cells are classes (the page's policy allows no inline style)."""

from string import Template

from .html_page import HEAD

STYLE = """
:root { color-scheme: dark; }
body { margin: 0; padding: 12px 16px; background: #181818; color: #e6e6e6;
       font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
h1 { font-size: 20px; margin: 0 0 4px; }
h2 { font-size: 16px; margin: 22px 0 6px; border-bottom: 1px solid #333; padding-bottom: 2px; }
h3 { font-size: 14px; margin: 10px 0 4px; }
.run, .note { margin: 0 0 8px; color: #bbb; }
.notice { display: inline-block; margin: 4px 0 10px; padding: 6px 10px; background: #5a1d1d; color: #fff;
          border: 1px solid #c33; font-weight: 600; }
.warn { color: #ffcf70; }
.figures { display: flex; flex-wrap: wrap; gap: 10px 28px; align-items: flex-start; }
.big { font-size: 28px; font-weight: 600; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #3a3a3a; padding: 2px 8px; text-align: right; }
th { color: #bbb; font-weight: 500; }
td.name, th.name { text-align: left; }
.s0 { background: #1e1e1e; } .s1 { background: #262f3a; } .s2 { background: #2b3a4e; } .s3 { background: #2f4662; }
.s4 { background: #335276; } .s5 { background: #375e8a; } .s6 { background: #3b6a9e; } .s7 { background: #3f76b2; }
.s8 { background: #4382c6; } .s9 { background: #478eda; }
.classes { display: flex; flex-wrap: wrap; gap: 14px; }
.card { background: #202020; border: 1px solid #333; padding: 8px; }
.card img { display: block; image-rendering: pixelated; }
.maps { display: flex; gap: 6px; }
.maps figure { margin: 0; }
figcaption { color: #aaa; font-size: 12px; }
.gallery { display: flex; flex-wrap: wrap; gap: 8px; }
.thumb { background: #202020; border: 1px solid #333; padding: 4px; width: 200px; font-size: 12px; cursor: pointer; }
.thumb img { display: block; max-width: 192px; }
.thumb .id { color: #ddd; overflow-wrap: anywhere; }
#controls { display: flex; flex-wrap: wrap; gap: 8px 16px; align-items: center; margin: 6px 0; }
input, select, button { background: #2a2a2a; color: #eee; border: 1px solid #555; padding: 2px 6px; }
#table th { cursor: pointer; user-select: none; }
#table th.sorted-up::after { content: " \\25B2"; } #table th.sorted-down::after { content: " \\25BC"; }
#table td img { display: block; height: 40px; }
#table tr.chosen td { background: #3a3520; }
td.right { color: #9fdf9f; } td.wrong { color: #ff9090; }
#command { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; background: #222; padding: 4px 8px;
           border: 1px solid #444; display: inline-block; min-height: 1.4em; }
.legend i { display: inline-block; width: 12px; height: 12px; margin: 0 4px 0 12px; vertical-align: -1px; }
.legend .for { background: #ff3030; } .legend .against { background: #3060ff; } .legend .band { background: #40d040; }
svg text { fill: #aaa; font-size: 10px; }
footer { margin-top: 22px; color: #888; font-size: 12px; }
"""

PAGE = Template(HEAD + """<h1>DiDA audit</h1>
<p class="run">$run</p>
$notice
$unfinished
<section id="overview"><h2>Accuracy and confusion</h2>
<div class="figures">$accuracy $confusion</div>
</section>
<section id="per-class"><h2>Per class: mean evidence and evidence inside the retina</h2>
<p class="note">$frame_text</p>
<p class="legend"><i class="for"></i>for the class <i class="against"></i>against it <i class="band"></i>retina band
(thumbnails)</p>
<div class="classes">$classes</div>
</section>
<section id="flags"><h2>Flagged</h2>
<h3 id="flag-wrong-reasons">Right for the wrong reasons: correct, with less than $inside_flag of the evidence inside the
retina ($n_wrong_reasons)</h3>
<div class="gallery" id="gallery-wrong-reasons">$wrong_reasons</div>
<h3 id="flag-confident">Wrong and confident: probability of at least $confident ($n_confident)</h3>
<div class="gallery" id="gallery-confident">$confident_items</div>
<h3>Most confused pairs, with their contrast maps "predicted rather than label"</h3>
<div id="pairs">$pairs</div>
</section>
<section id="all"><h2>Every item</h2>
<div id="controls">
  <label>find <input type="search" id="filter" placeholder="id, label or class"></label>
  <label>class <select id="class-filter"><option value="">any</option></select></label>
  <label>show <select id="kind-filter">
    <option value="">all</option><option value="correct">correct</option><option value="wrong">wrong</option>
    <option value="flagged">flagged</option><option value="failed">failed</option></select></label>
  <span id="count"></span>
</div>
<p>open a row as a DiDA View: <span id="command">click a row</span></p>
<table id="table"><thead></thead><tbody></tbody></table>
</section>
$failures
<footer>$footer</footer>
<script type="application/json" id="audit-data">$data</script>
<script>$script</script>
</body>
</html>
""")
