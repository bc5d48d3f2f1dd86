// The 收回 page: files, folders or zips dropped on the box are sent as one upload (field "files");
// every 复制 button copies the text of its notice. No other script than htmx.
(function () {
  function readEntry(entry, out) {
    if (entry.isFile) {
      return new Promise(function (done) { entry.file(function (f) { out.push(f); done(); }, done); });
    }
    if (!entry.isDirectory) return Promise.resolve();
    var reader = entry.createReader();
    return new Promise(function (done) {
      var all = [];
      (function more() {
        reader.readEntries(function (batch) {
          if (!batch.length) { Promise.all(all.map(function (e) { return readEntry(e, out); })).then(done); return; }
          all = all.concat(Array.prototype.slice.call(batch)); more();
        }, done);
      })();
    });
  }

  function dropped(ev) {
    var items = ev.dataTransfer.items, out = [], waits = [];
    if (items && items.length && items[0].webkitGetAsEntry) {
      for (var k = 0; k < items.length; k++) {
        var e = items[k].webkitGetAsEntry(), f = e ? null : items[k].getAsFile();
        if (e) waits.push(readEntry(e, out));
        else if (f) out.push(f);
      }
      return Promise.all(waits).then(function () { return out; });
    }
    return Promise.resolve(Array.prototype.slice.call(ev.dataTransfer.files));
  }

  document.addEventListener("DOMContentLoaded", function () {
    var drop = document.getElementById("drop"), input = document.getElementById("files");
    if (drop && input) {
      ["dragenter", "dragover"].forEach(function (t) {
        drop.addEventListener(t, function (ev) { ev.preventDefault(); drop.classList.add("over"); });
      });
      drop.addEventListener("dragleave", function () { drop.classList.remove("over"); });
      drop.addEventListener("drop", function (ev) {
        ev.preventDefault(); drop.classList.remove("over");
        dropped(ev).then(function (files) {
          var dt = new DataTransfer();
          files.forEach(function (f) { dt.items.add(f); });
          input.files = dt.files;
          htmx.trigger("#upload", "drop-files");
        });
      });
    }
  });

  document.addEventListener("click", function (ev) {
    var b = ev.target.closest("button.copy");
    if (!b) return;
    var text = b.closest(".notice").querySelector("pre").innerText;
    var done = function () { b.textContent = "已复制"; setTimeout(function () { b.textContent = "复制"; }, 1500); };
    if (navigator.clipboard && window.isSecureContext) { navigator.clipboard.writeText(text).then(done); return; }
    var t = document.createElement("textarea"); t.value = text; document.body.appendChild(t); t.select();
    document.execCommand("copy"); document.body.removeChild(t); done();
  });
})();
