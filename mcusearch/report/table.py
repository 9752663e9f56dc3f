"""The all-trials table: one row per trial, sortable by any column (click its header) and
filterable (free text and the trial's class), with links to each trial's artifacts.

Entry point: :func:`trials_table_html`; the script that sorts and filters is :data:`TABLE_JS`.
"""
from __future__ import annotations

import html

from mcusearch.report.rows import Row

CATEGORIES = ("Pareto-optimal", "feasible", "violates a constraint", "failed", "rejected", "running")


def _figure_cell(row: Row, metric: str, fmt: str) -> str:
    from mcusearch.report import PROVENANCE_MARK

    fig = row.figures.get(metric)
    if fig is None:
        return "<td data-v=''>–</td>"
    tip = html.escape(f"{fig.unit}; {fig.provenance.value}: {fig.method}")
    mark = PROVENANCE_MARK.get(fig.provenance.value, "?")
    return (f"<td data-v='{fig.value!r}' title='{tip}'>{html.escape(fmt.format(fig.value))} "
            f"<span class='prov'>{mark}</span></td>")


def _row_html(row: Row, knobs: list[str], cols: list[tuple[str, str, str]]) -> str:
    cls = row.category.replace(" ", "-").lower() + (" recommended" if row.recommended else "")
    cells = [f"<td data-v='{row.number}'>{row.number}{' ★' if row.recommended else ''}</td>",
             f"<td><span class='cat'>{html.escape(row.category)}</span></td>"]
    cells += [f"<td class='knob'>{html.escape(row.knobs.get(k, ''))}</td>" for k in knobs]
    cells += [_figure_cell(row, m, f) for m, _, f in cols]
    cells.append(f"<td>{html.escape(', '.join(row.violated))}</td>")
    cells.append(f"<td>{html.escape(row.stage)}</td>")
    cells.append(f"<td class='reason'>{html.escape(row.reason)}</td>")
    links = " ".join(f'<a href="{html.escape(p)}">{html.escape(n)}</a>' for n, p in row.links.items())
    if row.profiled:
        links += f" <button type='button' onclick='mcusShowProfile({row.number})'>profile</button>"
    cells.append(f"<td class='links'>{links}</td>")
    return f"<tr id='trial-{row.number}' class='{html.escape(cls)}'>{''.join(cells)}</tr>"


def trials_table_html(rows: list[Row], knobs: list[str], cols: list[tuple[str, str, str]]) -> str:
    """The table with its filter controls (a ``<section id='trials'>`` body)."""
    heads = ["trial", "class", *knobs, *(h for _, h, _ in cols), "violates", "failed at", "reason", "artifacts"]
    head = "".join(f"<th>{html.escape(h)}</th>" for h in heads)  # a column whose cells have data-v sorts as numbers
    counts = {c: sum(r.category == c for r in rows) for c in CATEGORIES}
    options = "".join(f"<option value='{html.escape(c)}'>{html.escape(c)} ({n})</option>"
                      for c, n in counts.items() if n)
    controls = (f"<div class='controls'><input id='trial-filter' type='search' "
                f"placeholder='filter: any text in a row (knob value, stage, reason…)'>"
                f"<select id='trial-class'><option value=''>every class ({len(rows)})</option>{options}"
                f"</select> <span id='trial-count'></span></div>")
    body = "".join(_row_html(r, knobs, cols) for r in rows)
    return (f"{controls}<div class='scroll'><table id='trials-table' class='trials'><thead><tr>{head}</tr>"
            f"</thead><tbody>{body}</tbody></table></div>")


TABLE_JS = """
(function(){
  var table=document.getElementById('trials-table'); if(!table) return;
  var tbody=table.tBodies[0], heads=table.tHead.rows[0].cells;
  var filter=document.getElementById('trial-filter'), klass=document.getElementById('trial-class');
  var count=document.getElementById('trial-count');
  function key(td,type){var v=td.getAttribute('data-v');
    if(type==='num'){return (v===null||v==='')?null:parseFloat(v);} return td.textContent.trim().toLowerCase();}
  Array.prototype.forEach.call(heads,function(th,i){
    th.addEventListener('click',function(){
      var first=tbody.rows.length?tbody.rows[0].cells[i]:null, asc=th.getAttribute('aria-sort')!=='ascending';
      var type=first&&first.hasAttribute('data-v')?'num':'text';
      Array.prototype.forEach.call(heads,function(h){h.removeAttribute('aria-sort');});
      th.setAttribute('aria-sort',asc?'ascending':'descending');
      var rows=Array.prototype.slice.call(tbody.rows);
      rows.sort(function(a,b){var x=key(a.cells[i],type), y=key(b.cells[i],type);
        if(x===y) return 0; if(x===null) return 1; if(y===null) return -1;  // blanks last
        return (x<y?-1:1)*(asc?1:-1);});
      rows.forEach(function(r){tbody.appendChild(r);});
    });
  });
  function apply(){var q=filter.value.trim().toLowerCase(), c=klass.value, n=0;
    Array.prototype.forEach.call(tbody.rows,function(r){
      var show=(!q||r.textContent.toLowerCase().indexOf(q)>=0)&&
               (!c||r.querySelector('.cat').textContent===c);
      r.style.display=show?'':'none'; if(show) n++;});
    count.textContent=n+' of '+tbody.rows.length+' trials shown';}
  filter.addEventListener('input',apply); klass.addEventListener('change',apply); apply();
})();
"""
