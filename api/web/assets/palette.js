// The command palette's keys: Ctrl+K (Cmd+K on a Mac) opens it, the arrow
// keys move through the options, Enter opens the chosen one (or the first),
// Escape closes it (the dialog's own behaviour). The input is a WAI-ARIA
// combobox: focus stays in it and `aria-activedescendant` names the active
// option, so a screen reader reads the option as it moves. htmx fetches the
// options (`GET /palette?q=`); this file only handles keys and clicks.
// Without JavaScript, the "Search" link in the top bar is a page.
(function () {
  'use strict';

  var dialog, input, list;

  function options() {
    return list ? Array.prototype.slice.call(list.querySelectorAll('[role="option"]')) : [];
  }

  function activeOption() {
    var id = input.getAttribute('aria-activedescendant');
    return id ? document.getElementById(id) : null;
  }

  function setActive(opt) {
    options().forEach(function (o) {
      o.setAttribute('aria-selected', o === opt ? 'true' : 'false');
    });
    if (opt) {
      input.setAttribute('aria-activedescendant', opt.id);
      if (typeof opt.scrollIntoView === 'function') opt.scrollIntoView({ block: 'nearest' });
    } else {
      input.removeAttribute('aria-activedescendant');
    }
  }

  function move(step) {
    var all = options();
    if (!all.length) return;
    var i = all.indexOf(activeOption());
    if (i < 0) {
      i = step > 0 ? 0 : all.length - 1;
    } else {
      i = (i + step + all.length) % all.length;
    }
    setActive(all[i]);
  }

  function go(opt) {
    var href = opt && opt.getAttribute('data-href');
    // Only paths of this site: the server builds them, but be sure.
    if (href && href.charAt(0) === '/' && href.charAt(1) !== '/') {
      window.location.assign(href);
    }
  }

  function load() {
    if (window.htmx && typeof window.htmx.ajax === 'function') {
      window.htmx.ajax('GET', '/palette?q=' + encodeURIComponent(input.value), {
        target: '#palette-list',
        swap: 'innerHTML'
      });
    }
  }

  // After every swap of the options: the listbox is expanded when it has
  // any, and no option is active until the person moves.
  function synced() {
    if (!input) return;
    input.setAttribute('aria-expanded', options().length ? 'true' : 'false');
    setActive(null);
  }

  function open() {
    if (!dialog) return;
    if (!dialog.open) dialog.showModal();
    input.focus();
    input.select();
    load();
  }

  function onInputKey(evt) {
    switch (evt.key) {
      case 'ArrowDown':
        evt.preventDefault();
        move(1);
        break;
      case 'ArrowUp':
        evt.preventDefault();
        move(-1);
        break;
      case 'Enter':
        var opt = activeOption() || options()[0];
        if (opt) {
          evt.preventDefault();
          go(opt);
        }
        break;
      default:
        break;
    }
  }

  function init() {
    dialog = document.getElementById('palette');
    input = document.getElementById('palette-input');
    list = document.getElementById('palette-list');
    if (!dialog || !input || !list || dialog.dataset.ready === 'on') return;
    dialog.dataset.ready = 'on';
    input.addEventListener('keydown', onInputKey);
    list.addEventListener('click', function (evt) {
      var opt = evt.target.closest ? evt.target.closest('[role="option"]') : null;
      if (opt) go(opt);
    });
    list.addEventListener('mousemove', function (evt) {
      var opt = evt.target.closest ? evt.target.closest('[role="option"]') : null;
      if (opt && opt !== activeOption()) setActive(opt);
    });
    dialog.addEventListener('close', function () {
      input.setAttribute('aria-expanded', 'false');
      setActive(null);
    });
    // A click on the backdrop (outside the box) closes it.
    dialog.addEventListener('click', function (evt) {
      if (evt.target === dialog) dialog.close();
    });
    document.querySelectorAll('[data-palette-open]').forEach(function (a) {
      a.addEventListener('click', function (evt) {
        evt.preventDefault();
        open();
      });
    });
  }

  document.addEventListener('keydown', function (evt) {
    if ((evt.ctrlKey || evt.metaKey) && !evt.altKey && (evt.key === 'k' || evt.key === 'K')) {
      evt.preventDefault();
      init();
      open();
    }
  });

  document.addEventListener('DOMContentLoaded', init);
  document.addEventListener('htmx:after:settle', synced);
  document.addEventListener('htmx:after:swap', synced);
})();
