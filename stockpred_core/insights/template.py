"""The daily report's jinja2 template (rendered by report.render_html, autoescaped). An email template: every style
inline (mail clients drop <style> blocks), tables for layout, nothing loaded from elsewhere. A Python string rather
than a .j2 file, so it ships with the package without package data."""

HTML_TEMPLATE = """\
{%- set th = "text-align:left;padding:4px 10px;background:#f2f4f7;border-bottom:1px solid #d0d5dd;font-weight:600" -%}
{%- set td = "padding:4px 10px;border-bottom:1px solid #eaecf0" -%}
{%- set num = td ~ ";text-align:right;font-family:Menlo,Consolas,monospace" -%}
{%- macro signals(rows, colour) -%}
<table style="border-collapse:collapse;font-size:13px;margin:0 0 18px 0">
  <tr><th style="{{ th }}">ticker</th><th style="{{ th }}">sector</th><th style="{{ th }}">prediction</th>\
<th style="{{ th }}">interval (90%)</th></tr>
{%- for s in rows %}
  <tr><td style="{{ td }};font-weight:600">{{ s.ticker }}</td><td style="{{ td }}">{{ s.sector }}</td>\
<td style="{{ num }};color:{{ colour }}">{{ s.prediction | pct }}</td><td style="{{ num }}">{{ s | interval }}</td></tr>
{%- else %}
  <tr><td style="{{ td }}" colspan="4">no predictions for the day</td></tr>
{%- endfor %}
</table>
{%- endmacro -%}
<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>{{ r.title }}</title></head>
<body style="margin:0;padding:24px;background:#ffffff;color:#1d2939;\
font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif">
<h1 style="font-size:20px;margin:0 0 4px 0">{{ r.title }}</h1>
<p style="margin:0 0 18px 0;color:#475467;font-size:13px">{{ r.tickers }} tickers scored by model version(s) \
{{ r.model_versions | join(", ") or "-" }}.{% if note %} {{ note }}{% endif %}</p>

<h2 style="font-size:16px;margin:18px 0 6px 0">Top signals</h2>
{{ signals(r.top, "#067647") }}
<h2 style="font-size:16px;margin:18px 0 6px 0">Bottom signals</h2>
{{ signals(r.bottom, "#b42318") }}

<h2 style="font-size:16px;margin:18px 0 6px 0">Sectors</h2>
<table style="border-collapse:collapse;font-size:13px;margin:0 0 18px 0">
  <tr><th style="{{ th }}">sector</th><th style="{{ th }}">mean prediction</th><th style="{{ th }}">tickers</th></tr>
{%- for s in r.sectors %}
  <tr><td style="{{ td }}">{{ s.sector }}</td><td style="{{ num }}">{{ s.mean_prediction | pct }}</td>\
<td style="{{ num }}">{{ s.tickers }}</td></tr>
{%- endfor %}
</table>

<h2 style="font-size:16px;margin:18px 0 6px 0">Model health</h2>
<table style="border-collapse:collapse;font-size:13px;margin:0 0 18px 0">
  <tr><th style="{{ th }}">champion</th><td style="{{ td }}">{{ "v" ~ h.version if h.version else "-" }} \
({{ h.family or "-" }})</td></tr>
  <tr><th style="{{ th }}">live rank IC</th><td style="{{ num }}">{{ h.live_rank_ic | num }} \
(test {{ h.baseline_rank_ic | num }})</td></tr>
  <tr><th style="{{ th }}">drift</th><td style="{{ td }}">{{ h.drift_status or "no drift report for the day" }}\
{% if h.drift_share is not none %}: {{ "%.0f" | format(h.drift_share * 100) }}% of features drifting{% endif %}\
{% if h.max_psi_feature %} (largest PSI: {{ h.max_psi_feature }}){% endif %}</td></tr>
{%- if h.drift_reasons %}
  <tr><th style="{{ th }}">why</th><td style="{{ td }}">{{ h.drift_reasons }}</td></tr>
{%- endif %}
</table>

<h2 style="font-size:16px;margin:18px 0 6px 0">Alerts fired ({{ r.alerts | length }})</h2>
<table style="border-collapse:collapse;font-size:13px;margin:0 0 18px 0">
  <tr><th style="{{ th }}">subscriber</th><th style="{{ th }}">rule</th><th style="{{ th }}">ticker</th>\
<th style="{{ th }}">message</th></tr>
{%- for a in r.alerts[:200] %}
  <tr><td style="{{ td }}">{{ a.subscriber }}</td><td style="{{ td }}">{{ a.rule }}</td>\
<td style="{{ td }}">{{ a.ticker }}</td><td style="{{ td }}">{{ a.message }}</td></tr>
{%- else %}
  <tr><td style="{{ td }}" colspan="4">no alerts fired</td></tr>
{%- endfor %}
</table>
<p style="color:#667085;font-size:11px;margin-top:24px">Predictions are forecasts, not advice. Intervals: the \
prediction plus the model's 5% and 95% test residual quantiles.</p>
</body>
</html>
"""
