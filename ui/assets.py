"""The web chat's stylesheet and its one script.

The script makes citations work: a click on ``[n]`` scrolls to that answer's source card and
flashes it (or, for an older answer whose cards are gone, opens the document at the span); an
"Open in document" link opens the reader at the cited span; "Copy" copies clean text. It reads
only link targets that ``ui/render.py`` wrote, and hands a target to the server by clicking a
hidden button whose event reads ``window.__ragTarget``.
"""

from __future__ import annotations

CSS = """
.rag-answer .flag { color: #9a3412; font-size: 0.9em; }
.rag-not-found { color: #6b7280; font-style: italic; }
.rag-sources { font-size: 0.92em; }
.rag-source { border-left: 3px solid #d1d5db; margin: 0 0 0.9em 0; padding: 0.2em 0.7em; transition: background 0.3s; }
.rag-source .meta, .rag-reader .meta { color: #4b5563; font-size: 0.85em; margin-bottom: 0.3em; }
.rag-source .n { font-weight: 600; }
.rag-source.rag-flash { background: rgba(250, 204, 21, 0.25); }
.rag-answer .rag-phrase, .rag-source .rag-phrase { font-weight: 700; }
/* Highlights readable in both themes: dark text on amber, light text on deep amber. */
.rag-source mark, .rag-reader mark { background: #fde68a; color: #1f2937; padding: 0 0.1em; border-radius: 2px; }
.dark .rag-source mark, .dark .rag-reader mark { background: #92400e; color: #fffbeb; }
.dark .rag-source .meta, .dark .rag-reader .meta { color: #9ca3af; }
.rag-source .rag-also { color: #4b5563; font-size: 0.85em; font-style: italic; margin-bottom: 0.3em; }
.dark .rag-source .rag-also { color: #9ca3af; }
.dark .rag-source { border-left-color: #4b5563; }
.rag-cite { text-decoration: none; font-weight: 600; }
.rag-table { border-collapse: collapse; margin: 0.4em 0; }
.rag-table th, .rag-table td { border: 1px solid #d1d5db; padding: 0.2em 0.5em; text-align: left; }
.dark .rag-table th, .dark .rag-table td { border-color: #4b5563; }
.rag-tools { margin-top: 0.4em; font-size: 0.8em; }
.rag-searched { margin-top: 0.4em; font-size: 0.8em; color: #6b7280; font-style: italic; }
.dark .rag-searched { color: #9ca3af; }
#ask-note { color: #9a3412; min-height: 0; }
.dark #ask-note { color: #fdba74; }
.rag-copy, .rag-open { text-decoration: underline; cursor: pointer; }
.rag-copy-text, .rag-hidden { display: none !important; }
.rag-reader .rag-text { line-height: 1.6; max-height: 70vh; overflow-y: auto; }
/* An answer over a story's versions: a timeline, the lead first, earlier reports dated below. */
.rag-timeline { list-style: none; margin: 0; padding: 0 0 0 0.9em; border-left: 2px solid #d1d5db; }
.rag-timeline li { position: relative; margin: 0 0 0.6em 0; }
.rag-timeline li::before { content: ""; position: absolute; left: -1.28em; top: 0.45em; width: 0.6em; height: 0.6em;
  border-radius: 50%; background: #9ca3af; }
.rag-timeline li.rag-lead::before, .rag-timeline li.rag-differs::before { background: #2563eb; }
.rag-timeline li.rag-heading::before { display: none; }
.rag-timeline .rag-when { font-weight: 600; }
.rag-timeline li.rag-earlier, .rag-timeline li.rag-later { color: #4b5563; }
.dark .rag-timeline { border-left-color: #4b5563; }
.dark .rag-timeline li.rag-earlier, .dark .rag-timeline li.rag-later { color: #9ca3af; }
.rag-reader h3 { margin: 0 0 0.2em 0; }
.rag-reader .rag-story { color: #4b5563; font-size: 0.85em; margin: 0 0 0.5em 1em; padding: 0; }
.dark .rag-reader .rag-story { color: #9ca3af; }
/* The document library: the chat's font, titles and sources wrapped, every column in view at
   1280 px with both sidebars open; on a phone the chunk count and indexing time give way.
   (Gradio scopes this stylesheet; container queries do not survive it, media queries do.) */
.rag-library { max-height: 420px; overflow-y: auto; }
.rag-library table { width: 100%; border-collapse: collapse; font-size: 0.92em; }
.rag-library th { text-align: left; position: sticky; top: 0; background: var(--background-fill-primary); }
.rag-library table, .rag-library th, .rag-library td { border: none !important; }
.rag-library th, .rag-library td { padding: 0.35em 0.5em !important; border-bottom: 1px solid #e5e7eb !important;
  vertical-align: top; }
.dark .rag-library th, .dark .rag-library td { border-bottom-color: #374151 !important; }
.rag-library td.rag-title, .rag-library td.rag-src { overflow-wrap: anywhere; }
.rag-library .rag-date { white-space: nowrap; }
.rag-library .rag-chunks { text-align: right; }
.rag-library a.rag-doc { text-decoration: none; font-weight: 600; }
@media (max-width: 700px) { .rag-library .rag-indexed, .rag-library .rag-chunks { display: none; } }
/* Narrow screens: the question box takes the whole width, the Ask and Stop buttons go under it. */
@media (max-width: 700px) {
  #question-row { flex-wrap: wrap; }
  #question-row > * { min-width: 100% !important; }
}
"""

HEAD = """
<style>
/* Here, not in CSS: Gradio scopes CSS to the page's content, and these rules style its parent.
   Gradio pads the page by the widest sidebar on both sides; make room for each open one only. */
@media (min-width: 700px) {
  .sidebar-parent { padding-left: 16px !important; padding-right: 16px !important; }
  .sidebar-parent:has(#conversations.open) { padding-left: 276px !important; }
  .sidebar-parent:has(#sources-panel.open) { padding-right: calc(34% + 16px) !important; }
}
</style>
<script>
(() => {
  function open(target) {
    window.__ragTarget = target;
    const button = document.querySelector('#rag-open-button');
    if (button) button.click();
  }
  // On a phone both sidebars (conversations, sources) start closed: the chat takes the screen.
  if (window.innerWidth < 700) {
    let tries = 0;
    const closer = setInterval(() => {
      document.querySelectorAll('.sidebar.open > .toggle-button').forEach((b) => b.click());
      if (++tries > 40 || document.querySelector('#question')) {
        if (!document.querySelector('.sidebar.open')) clearInterval(closer);
        if (tries > 40) clearInterval(closer);
      }
    }, 250);
  }
  document.addEventListener('click', (event) => {
    const link = event.target.closest ? event.target.closest('a[href^="#rag-"]') : null;
    if (!link) return;
    event.preventDefault();
    event.stopPropagation();
    const parts = link.getAttribute('href').slice(1).split('/');
    if (parts[0] === 'rag-cite') {          // #rag-cite/KEY/N/DOC/START/END
      const card = document.getElementById('source-' + parts[1] + '-' + parts[2]);
      if (card) {
        const drawer = card.closest('.sidebar');  // on a phone the sources wait in a closed drawer
        if (drawer && !drawer.classList.contains('open')) drawer.querySelector('.toggle-button').click();
        card.scrollIntoView({behavior: 'smooth', block: 'center'});
        card.classList.add('rag-flash');
        setTimeout(() => card.classList.remove('rag-flash'), 1600);
      } else {
        open(parts.slice(3).join('/'));
      }
    } else if (parts[0] === 'rag-open' || parts[0] === 'rag-doc') {   // #rag-open/DOC/START/END, #rag-doc/DOC
      open(parts.slice(1).join('/'));
    } else if (parts[0] === 'rag-copy') {
      const box = link.closest('.rag-answer');
      const text = box ? box.querySelector('.rag-copy-text') : null;
      if (text && navigator.clipboard) {
        navigator.clipboard.writeText(text.textContent);
        link.textContent = 'Copied';
        setTimeout(() => { link.textContent = 'Copy'; }, 1500);
      }
    }
  }, true);
})();
</script>
"""

# After the reader opens: bring the cited span into view, or the reader itself (a document chosen
# in the library).
SCROLL_TO_SPAN = """() => { setTimeout(() => {
  const span = document.getElementById('rag-span');
  if (span) span.scrollIntoView({block: 'center'});
  else { const reader = document.getElementById('reader'); if (reader) reader.scrollIntoView({block: 'start'}); }
}, 400); }"""

# After an answer is complete: its question and first line in view. The chat follows a streaming
# answer's end, and a phone scrolls the page to the question box, so the start of a long answer
# (a timeline, several sentences) was above the screen. Two frames: after the final render.
SHOW_LATEST_ANSWER = """() => { requestAnimationFrame(() => requestAnimationFrame(() => {
  const rows = document.querySelectorAll('#chat .message-row.user-row');
  const asked = rows[rows.length - 1];
  if (asked) asked.scrollIntoView({block: 'start', behavior: 'instant'});
})); }"""
