// Rapport's own script: small, and only ever an improvement. Every page
// works without it (links and forms that post and redirect).
//
// - htmx requests carry the session's CSRF token in a header (plain forms
//   carry it in a hidden field).
// - Pipeline cards drag between columns with SortableJS; a drop submits the
//   card's own "Move to…" form, so dragging and the menu share one path.
// - "Select all" toggles the row checkboxes of a table.
// - On Today, an action or task that leaves the list would take the focus
//   with it: the focus goes to the next item (or the section's heading).
// - Toasts leave after a while (they stay in the live region's history for
//   screen readers that already announced them).
(function () {
  'use strict';

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute('content') : '';
  }

  document.addEventListener('htmx:config:request', function (evt) {
    var token = csrfToken();
    var ctx = evt.detail && evt.detail.ctx;
    if (token && ctx && ctx.request && ctx.request.headers) {
      ctx.request.headers['X-CSRF-Token'] = token;
    }
  });

  function initBoard() {
    if (typeof window.Sortable === 'undefined') return;
    document.querySelectorAll('[data-board] .cards').forEach(function (list) {
      if (list.dataset.sortable === 'on') return;
      list.dataset.sortable = 'on';
      window.Sortable.create(list, {
        group: 'deals',
        // A synthetic drag (mouse events, not the HTML5 drag API), which
        // WebDriver and touch screens can perform too.
        forceFallback: true,
        animation: 120,
        draggable: '.card',
        filter: 'select, button, input, label',
        preventOnFilter: false,
        onEnd: function (evt) {
          if (evt.from === evt.to) return;
          var form = evt.item.querySelector('form.move');
          if (!form) return;
          form.querySelector('select[name="stage_id"]').value = evt.to.dataset.stage;
          if (typeof form.requestSubmit === 'function') {
            form.requestSubmit();
          } else {
            form.submit();
          }
        }
      });
    });
  }

  function expireToasts() {
    document.querySelectorAll('#toasts .toast:not([data-expiring])').forEach(function (t) {
      t.setAttribute('data-expiring', '1');
      window.setTimeout(function () { t.remove(); }, 8000);
    });
  }

  document.addEventListener('change', function (evt) {
    var box = evt.target;
    if (!box.matches || !box.matches('[data-select-all]')) return;
    document.querySelectorAll('input[name="ids"][form="bulk"]').forEach(function (c) {
      c.checked = box.checked;
    });
  });

  var leaving = null;

  document.addEventListener('submit', function (evt) {
    var item = evt.target.closest && evt.target.closest('[data-today-item]');
    if (!item) { leaving = null; return; }
    var section = item.closest('section');
    var heading = section && section.querySelector('h2[tabindex]');
    var next = item.nextElementSibling || item.previousElementSibling;
    leaving = {
      id: item.id,
      next: next && next.id ? next.id : null,
      heading: heading ? heading.id : null
    };
  }, true);

  function refocus() {
    if (!leaving) return;
    var was = leaving;
    var still = document.getElementById(was.id);
    if (still && still.contains(document.activeElement)) return;
    leaving = null;
    var next = still || (was.next && document.getElementById(was.next));
    var target = next && next.querySelector('a, button, summary');
    if (!target && was.heading) target = document.getElementById(was.heading);
    if (target) target.focus();
  }

  function init() {
    refocus();
    initBoard();
    expireToasts();
  }

  document.addEventListener('DOMContentLoaded', init);
  document.addEventListener('htmx:after:settle', init);
  document.addEventListener('htmx:after:swap', init);
})();
