/* callstats dashboard: plain browser JavaScript, no build step. Charts: Chart.js (vendor/).
 *
 * The API key lives in sessionStorage and travels only in the x-api-key header. Live numbers come
 * from GET /streamCampaignStats/{id} (Server-Sent Events read through fetch(), because EventSource
 * cannot send headers); when the stream breaks the page polls getCampaignStats until it is back,
 * waiting out Retry-After when that route is rate limited. The campaign list reads its figures from
 * GET /getCampaignSummaries (one request per page of campaigns), which does not spend any campaign's
 * getCampaignStats quota.
 */
(function () {
  "use strict";

  const KEY_STORAGE = "callstats.apiKey";
  const OUTCOMES = ["answered", "busy", "no_answer", "failed", "voicemail"];
  const OUTCOME_LABELS = { answered: "Answered", busy: "Busy", no_answer: "No answer", failed: "Failed", voicemail: "Voicemail" };
  const OUTCOME_COLORS = { answered: "#1f8a4c", busy: "#d08700", no_answer: "#7a5cc2", failed: "#c23b3b", voicemail: "#2c8fb8" };
  const POLL_MS = 5000;
  const LIST_REFRESH_MS = 15000;
  const SUMMARY_BATCH = 200; // getCampaignSummaries takes up to 200 ids
  const STREAM_SILENCE_MS = 45000; // the server pings every 15 s: three missed pings mean a dead stream
  const RECONNECT_MS = [1000, 2000, 5000, 10000, 30000];
  const ACTIVITY_REFRESH_MS = 5000;
  const DURATIONS_REFRESH_MS = 10000;
  const LIVE_WINDOW_MS = 60000;
  const numberFormat = new Intl.NumberFormat();

  // ---------- small helpers ----------

  const $ = (selector, root) => (root || document).querySelector(selector);
  const $$ = (selector, root) => Array.from((root || document).querySelectorAll(selector));

  function show(element, visible) {
    element.hidden = !visible;
  }

  function say(element, text) {
    element.textContent = text || "";
    show(element, Boolean(text));
  }

  function formatSeconds(total) {
    const seconds = Math.round(total);
    if (seconds < 60) return seconds + " s";
    const hours = Math.floor(seconds / 3600);
    const minutes = Math.floor((seconds % 3600) / 60);
    const rest = String(seconds % 60).padStart(2, "0");
    if (hours === 0) return minutes + " min " + rest + " s";
    return numberFormat.format(hours) + " h " + String(minutes).padStart(2, "0") + " min";
  }

  function shortSeconds(seconds) {
    if (seconds === 0) return "0";
    if (seconds < 60) return seconds + "s";
    if (seconds < 3600) return seconds / 60 + "m";
    return seconds / 3600 + "h";
  }

  function formatTime(iso) {
    if (!iso) return "–";
    return new Date(iso).toLocaleString();
  }

  function percent(part, whole) {
    return whole > 0 ? (100 * part) / whole : 0;
  }

  // ---------- the API ----------

  class ApiFailure extends Error {
    constructor(status, code, message, retryAfter) {
      super(message);
      this.status = status;
      this.code = code;
      this.retryAfter = retryAfter || null; // seconds, from Retry-After (429 and 503)
    }
  }

  /** Seconds a Retry-After header asks to wait (delta-seconds or an HTTP date); null without one. */
  function retryAfterSeconds(response) {
    const value = response.headers.get("Retry-After");
    if (!value) return null;
    const seconds = /^\d+$/.test(value.trim()) ? Number(value) : (Date.parse(value) - Date.now()) / 1000;
    return Number.isFinite(seconds) ? Math.max(1, Math.ceil(seconds)) : null;
  }

  /** "refreshing in N s" until `until` (ms since the epoch), then "refreshing now". */
  function refreshingIn(until) {
    const seconds = Math.ceil((until - Date.now()) / 1000);
    return seconds > 0 ? "refreshing in " + seconds + " s" : "refreshing now";
  }

  /** Contacts being retried: a finished call, no final outcome yet (docs/api.md, The dashboard). */
  function contactsRetrying(stats) {
    const latest = OUTCOMES.reduce((sum, o) => sum + (stats.call_status_breakdown[o] || 0), 0);
    return Math.max(0, latest - stats.calls_completed - stats.calls_failed);
  }

  const session = {
    key: () => sessionStorage.getItem(KEY_STORAGE),
    signIn: (key) => sessionStorage.setItem(KEY_STORAGE, key),
    signOut: () => sessionStorage.removeItem(KEY_STORAGE),
  };

  async function apiGet(path, key, options) {
    let response;
    try {
      response = await fetch(path, {
        headers: { "x-api-key": key || session.key() || "", Accept: "application/json" },
        cache: "no-cache", // revalidates with the ETag: a 304 costs the server almost nothing
        signal: options && options.signal,
      });
    } catch (error) {
      if (error.name === "AbortError") throw error;
      throw new ApiFailure(0, "NETWORK", "Cannot reach the callstats server at " + location.origin);
    }
    const body = await response.json().catch(() => null);
    if (!response.ok || !body || body.success !== true) {
      const message = (body && body.message) || "HTTP " + response.status;
      throw new ApiFailure(response.status, body && body.error, message, retryAfterSeconds(response));
    }
    return body;
  }

  // ---------- Server-Sent Events over fetch ----------

  /** Splits a text/event-stream body into events: {id, event, data} objects, or {comment} for pings. */
  class SseParser {
    constructor(onEvent) {
      this.onEvent = onEvent;
      this.buffer = "";
    }

    push(text) {
      this.buffer += text.replace(/\r\n?/g, "\n");
      let end;
      while ((end = this.buffer.indexOf("\n\n")) >= 0) {
        const block = this.buffer.slice(0, end);
        this.buffer = this.buffer.slice(end + 2);
        this.dispatch(block);
      }
    }

    dispatch(block) {
      const event = { id: null, event: "message", data: [], comment: null, retry: null };
      for (const line of block.split("\n")) {
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "") event.comment = value;
        else if (field === "id") event.id = value;
        else if (field === "event") event.event = value;
        else if (field === "data") event.data.push(value);
        else if (field === "retry") event.retry = Number(value);
      }
      this.onEvent({ ...event, data: event.data.join("\n") });
    }
  }

  /**
   * Live stats of one campaign: the stream while it works, polling while it does not.
   * onStats(data) gets each new stats object; onState(state, detail) reports "connecting", "live",
   * "polling" (stream down, polls work), "limited" (stream down, polls refused with 429: detail.until
   * is when the next poll goes out, from Retry-After), "disconnected" (nothing works), or "fatal"
   * (401/404).
   */
  class LiveStats {
    constructor(campaignId, onStats, onState) {
      this.campaignId = campaignId;
      this.onStats = onStats;
      this.onState = onState;
      this.lastEventId = null;
      this.failures = 0;
      this.stopped = false;
      this.controller = null;
      this.polling = false;
      this.pollTimer = null;
      this.retryTimer = null;
      this.silenceTimer = null;
      this.delivered = false;
    }

    start() {
      this.onState("connecting");
      this.connect();
    }

    stop() {
      this.stopped = true;
      if (this.controller) this.controller.abort();
      clearTimeout(this.retryTimer);
      clearTimeout(this.silenceTimer);
      clearTimeout(this.pollTimer);
    }

    async connect() {
      if (this.stopped) return;
      this.controller = new AbortController();
      const headers = { "x-api-key": session.key() || "", Accept: "text/event-stream" };
      if (this.lastEventId) headers["Last-Event-ID"] = this.lastEventId;
      try {
        const response = await fetch("/streamCampaignStats/" + encodeURIComponent(this.campaignId), {
          headers, cache: "no-store", signal: this.controller.signal,
        });
        if (!response.ok) return this.refused(response);
        this.delivered = false;
        await this.read(response.body.getReader());
        // The server ends streams now and then (so keys are re-checked): a stream that worked reconnects at once.
        if (this.delivered && !this.stopped) return this.connect();
      } catch (error) {
        if (this.stopped) return;
      }
      this.broken();
    }

    async refused(response) {
      const body = await response.json().catch(() => null);
      const failure = new ApiFailure(response.status, body && body.error, (body && body.message) || "HTTP " + response.status);
      if (response.status === 401 || response.status === 403 || response.status === 404) {
        this.stop();
        this.onState("fatal", failure);
        return;
      }
      this.broken();
    }

    async read(reader) {
      const decoder = new TextDecoder();
      const parser = new SseParser((event) => this.received(event));
      this.armSilenceTimer();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        this.armSilenceTimer();
        parser.push(decoder.decode(value, { stream: true }));
      }
    }

    received(event) {
      this.delivered = true;
      if (this.failures > 0 || this.polling) this.recovered();
      this.onState("live");
      if (event.event !== "stats" || !event.data) return;
      if (event.id) this.lastEventId = event.id;
      this.onStats(JSON.parse(event.data).data);
    }

    armSilenceTimer() {
      clearTimeout(this.silenceTimer);
      this.silenceTimer = setTimeout(() => this.controller && this.controller.abort(), STREAM_SILENCE_MS);
    }

    recovered() {
      this.failures = 0;
      this.polling = false;
      clearTimeout(this.pollTimer);
      this.pollTimer = null;
    }

    broken() {
      if (this.stopped) return;
      clearTimeout(this.silenceTimer);
      const delay = RECONNECT_MS[Math.min(this.failures, RECONNECT_MS.length - 1)];
      this.failures += 1;
      if (!this.polling) {
        this.polling = true;
        this.poll();
      }
      this.retryTimer = setTimeout(() => this.connect(), delay);
    }

    /** One getCampaignStats read, then the next one POLL_MS later, or when Retry-After says after a 429. */
    async poll() {
      let wait = POLL_MS;
      try {
        const body = await apiGet("/getCampaignStats/" + encodeURIComponent(this.campaignId));
        if (this.stopped || !this.polling) return;
        this.onState("polling");
        this.onStats(body.data);
      } catch (failure) {
        if (this.stopped || !this.polling) return;
        if (failure.status === 401 || failure.status === 404) {
          this.stop();
          this.onState("fatal", failure);
          return;
        }
        if (failure.status === 429) {
          wait = 1000 * (failure.retryAfter || POLL_MS / 1000);
          failure.until = Date.now() + wait;
          this.onState("limited", failure);
        } else {
          this.onState("disconnected", failure);
        }
      }
      clearTimeout(this.pollTimer);
      this.pollTimer = setTimeout(() => this.poll(), wait);
    }
  }

  // ---------- the connection badge ----------

  const connection = {
    lastUpdate: null,
    countdown: null,

    set(state, detail) {
      clearInterval(this.countdown);
      this.countdown = null;
      const badge = $("#connection");
      const render = () => {
        const since = this.lastUpdate ? " Numbers shown are from " + this.lastUpdate.toLocaleTimeString() + "." : "";
        const texts = {
          connecting: "Connecting…",
          live: "Live",
          polling: "Live stream interrupted: updating every " + POLL_MS / 1000 + " s by polling, reconnecting…",
          limited: "Rate limited, " + refreshingIn(detail && detail.until) + "." + since,
          disconnected: "Disconnected: cannot reach the server." + since + " Retrying…",
          idle: "",
        };
        badge.textContent = texts[state] || "";
      };
      badge.className = "connection " + state;
      render();
      if (state === "limited") this.countdown = setInterval(render, 1000);
      badge.title = detail && detail.message ? detail.message : "";
      show(badge, state !== "idle" && state !== "fatal");
    },
  };

  // ---------- charts ----------

  function chartColor(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || "#888";
  }

  function baseOptions() {
    return {
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      plugins: { legend: { labels: { color: chartColor("--muted") } } },
    };
  }

  function outcomeChart(canvas) {
    return new Chart(canvas, {
      type: "bar",
      data: {
        labels: OUTCOMES.map((o) => OUTCOME_LABELS[o]),
        datasets: [{ label: "Contacts", data: OUTCOMES.map(() => 0), backgroundColor: OUTCOMES.map((o) => OUTCOME_COLORS[o]) }],
      },
      options: { ...baseOptions(), indexAxis: "y", plugins: { legend: { display: false } }, scales: { x: { beginAtZero: true, ticks: { precision: 0 } } } },
    });
  }

  function activityChart(canvas) {
    return new Chart(canvas, {
      data: {
        labels: [],
        datasets: [
          { type: "bar", label: "Calls per minute", data: [], yAxisID: "calls", backgroundColor: "rgba(44, 98, 214, 0.55)", maxBarThickness: 48, order: 2 },
          { type: "line", label: "Success rate (%)", data: [], yAxisID: "rate", borderColor: "#1f8a4c", backgroundColor: "#1f8a4c", pointRadius: 3, tension: 0.2, spanGaps: true, clip: false, order: 1 },
        ],
      },
      options: {
        ...baseOptions(),
        scales: {
          x: { ticks: { maxTicksLimit: 12, autoSkip: true } },
          calls: { position: "left", beginAtZero: true, title: { display: true, text: "calls / min" } },
          rate: { position: "right", min: 0, max: 100, grid: { drawOnChartArea: false }, title: { display: true, text: "success %" } },
        },
      },
    });
  }

  function durationChart(canvas) {
    return new Chart(canvas, {
      type: "bar",
      data: { labels: [], datasets: [{ label: "Answered calls", data: [], backgroundColor: "rgba(31, 138, 76, 0.7)" }] },
      options: { ...baseOptions(), plugins: { legend: { display: false } }, scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } },
    });
  }

  // Talk-time bins shown (upper edges in seconds); the server's finer buckets are summed into them.
  const DURATION_BINS = [10, 30, 60, 120, 180, 300, 600, 1200, 3600, Infinity];

  function durationBins(histogram) {
    const counts = DURATION_BINS.map(() => 0);
    for (const bucket of histogram) {
      const bin = DURATION_BINS.findIndex((edge) => bucket.le <= edge);
      counts[bin] += bucket.count;
    }
    const labels = DURATION_BINS.map((edge, i) => {
      const low = i === 0 ? 0 : DURATION_BINS[i - 1];
      return edge === Infinity ? "> " + shortSeconds(low) : shortSeconds(low) + "–" + shortSeconds(edge);
    });
    return { labels, counts };
  }

  // ---------- calls per minute and success rate over time ----------

  function bucketLabel(iso, interval) {
    const start = new Date(iso);
    if (interval === "day") return start.toLocaleDateString();
    const time = start.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    return interval === "hour" ? start.toLocaleDateString([], { month: "short", day: "numeric" }) + " " + time : time;
  }

  /**
   * Where the activity chart's points come from: GET /getCampaignTimeseries when the server has it,
   * else a rolling series built in the page from successive live snapshots.
   */
  class Activity {
    constructor(campaignId) {
      this.campaignId = campaignId;
      this.useRoute = true;
      this.snapshots = [];
    }

    remember(stats) {
      const now = Date.now();
      this.snapshots.push({ t: now, final: stats.calls_completed + stats.calls_failed, rate: stats.success_rate });
      while (this.snapshots.length > 2 && now - this.snapshots[0].t > 6 * 3600 * 1000) this.snapshots.shift();
    }

    async points(stats) {
      if (this.useRoute) {
        try {
          return await this.fromRoute(stats);
        } catch (failure) {
          if (failure.status !== 404 && failure.status !== 405) throw failure;
          this.useRoute = false; // an older server: no time-series route
        }
      }
      return this.fromSnapshots();
    }

    async fromRoute(stats) {
      if (!stats.started_at) return { labels: [], calls: [], rate: [], note: "No calls yet." };
      const age = Date.now() - Date.parse(stats.started_at);
      const interval = age <= 6 * 3600e3 ? "minute" : age <= 14 * 86400e3 ? "hour" : "day";
      const minutes = { minute: 1, hour: 60, day: 1440 }[interval];
      const query = "?interval=" + interval + "&tz=" + encodeURIComponent(Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC");
      const body = await apiGet("/getCampaignTimeseries/" + encodeURIComponent(this.campaignId) + query);
      let done = 0;
      let failed = 0;
      const series = { labels: [], calls: [], rate: [] };
      for (const bucket of body.data.buckets) {
        done += bucket.contacts_completed;
        failed += bucket.contacts_failed;
        series.labels.push(bucketLabel(bucket.start, interval));
        series.calls.push(bucket.calls_started / minutes);
        series.rate.push(done + failed > 0 ? (100 * done) / (done + failed) : null);
      }
      const per = interval === "minute" ? "minute" : interval + " (averaged per minute)";
      return { ...series, note: "Calls started per " + per + " and the success rate so far, from getCampaignTimeseries." };
    }

    fromSnapshots() {
      const series = { labels: [], calls: [], rate: [] };
      for (const point of this.snapshots) {
        const windowStart = this.snapshots.find((p) => point.t - p.t <= LIVE_WINDOW_MS) || point;
        const minutes = (point.t - windowStart.t) / 60000;
        series.labels.push(new Date(point.t).toLocaleTimeString());
        series.calls.push(minutes > 0 ? (point.final - windowStart.final) / minutes : 0);
        series.rate.push(point.rate);
      }
      const note = "Contacts reaching a final outcome per minute and the success rate, sampled from live updates since this page opened.";
      return { ...series, note };
    }
  }

  // ---------- the campaign page ----------

  class CampaignPage {
    constructor(campaignId) {
      this.campaignId = campaignId;
      this.stats = null;
      this.activity = new Activity(campaignId);
      this.charts = {
        outcomes: outcomeChart($("#chart-outcomes")),
        activity: activityChart($("#chart-activity")),
        durations: durationChart($("#chart-durations")),
      };
      this.live = new LiveStats(campaignId, (stats) => this.update(stats), (state, detail) => this.state(state, detail));
      this.timers = { activity: null, durations: null };
      this.fetched = { activity: 0, durations: 0 };
      this.answeredSeen = null;
      this.limitTimer = null;
    }

    start() {
      $("#campaign-id").textContent = this.campaignId;
      $("#campaign-name").textContent = "Campaign";
      say($("#campaign-error"), "");
      say($("#campaign-status"), "");
      this.live.start();
      this.everyHalfMinute = setInterval(() => this.refreshActivity(true), 30000);
    }

    stop() {
      this.live.stop();
      clearInterval(this.limitTimer);
      say($("#campaign-status"), "");
      clearInterval(this.everyHalfMinute);
      clearTimeout(this.timers.activity);
      clearTimeout(this.timers.durations);
      Object.values(this.charts).forEach((chart) => chart.destroy());
      connection.set("idle");
    }

    state(state, detail) {
      if (state === "fatal") {
        if (detail.status === 401) return app.signOut("Your API key is no longer accepted: " + detail.message);
        say($("#campaign-error"), detail.status === 404 ? "Campaign not found for this API key." : detail.message);
      }
      clearInterval(this.limitTimer);
      this.limitTimer = null;
      if (state === "limited") {
        const render = () => say($("#campaign-status"), this.limitedText(detail.until));
        render();
        this.limitTimer = setInterval(render, 1000);
      } else {
        say($("#campaign-status"), "");
      }
      connection.set(state, detail);
    }

    /** What the page says while getCampaignStats answers 429 and the live stream is down. */
    limitedText(until) {
      const shown = this.stats
        ? "The numbers below are from " + connection.lastUpdate.toLocaleTimeString() + "."
        : "No numbers yet.";
      return "Statistics for this campaign are rate limited (too many getCampaignStats requests for it), " +
        refreshingIn(until) + ". " + shown + " The live stream does not count against the limit and resumes on its own.";
    }

    update(stats) {
      const previous = this.stats;
      this.stats = stats;
      connection.lastUpdate = new Date();
      $("#last-update").textContent = connection.lastUpdate.toLocaleTimeString();
      this.renderNumbers(stats, previous);
      this.renderProgress(stats);
      this.renderOutcomes(stats);
      this.activity.remember(stats);
      this.refreshActivity(false);
      this.refreshDurations(stats);
    }

    renderNumbers(stats, previous) {
      $("#campaign-name").textContent = stats.campaign_name;
      const shown = {
        total_contacts: numberFormat.format(stats.total_contacts),
        calls_completed: numberFormat.format(stats.calls_completed),
        calls_failed: numberFormat.format(stats.calls_failed),
        calls_in_progress: numberFormat.format(stats.calls_in_progress),
        calls_pending: numberFormat.format(stats.calls_pending),
        success_rate: stats.success_rate.toFixed(2) + " %",
        average_call_duration: formatSeconds(stats.average_call_duration),
        total_call_duration: formatSeconds(stats.total_call_duration),
        started_at: formatTime(stats.started_at),
        completed_at: stats.completed_at ? formatTime(stats.completed_at) : stats.started_at ? "still running" : "not started",
      };
      for (const element of $$("[data-field]", $("#campaign-view"))) {
        const name = element.dataset.field;
        element.dataset.value = String(stats[name]);
        if (element.textContent !== shown[name]) {
          element.textContent = shown[name];
          if (previous) flash(element);
        }
        if (element.tagName === "TIME") element.dateTime = stats[name] || "";
      }
      for (const element of $$("[data-breakdown]")) {
        const count = stats.call_status_breakdown[element.dataset.breakdown];
        element.dataset.value = String(count);
        element.textContent = numberFormat.format(count);
      }
      const retrying = contactsRetrying(stats);
      const retryingElement = $('[data-derived="contacts_retrying"]');
      retryingElement.dataset.value = String(retrying);
      if (retryingElement.textContent !== numberFormat.format(retrying)) {
        retryingElement.textContent = numberFormat.format(retrying);
        if (previous) flash(retryingElement);
      }
      $("#breakdown-note").textContent =
        "Each contact's most recent finished call, including the " + numberFormat.format(retrying) +
        (retrying === 1 ? " contact" : " contacts") + " being retried (not final, so not in Failed or Success rate).";
    }

    renderProgress(stats) {
      const total = stats.total_contacts;
      const final = stats.calls_completed + stats.calls_failed;
      renderBar($("#progress"), stats);
      const done = percent(final, total);
      $("#progress").setAttribute("aria-valuenow", done.toFixed(1));
      $("#progress-text").textContent =
        numberFormat.format(final) + " of " + numberFormat.format(total) + " contacts final (" + done.toFixed(1) + " %) · " +
        numberFormat.format(stats.calls_in_progress) + " in progress · " + numberFormat.format(stats.calls_pending) + " pending";
      document.title = done.toFixed(0) + "% · " + stats.campaign_name + " · callstats";
    }

    renderOutcomes(stats) {
      const chart = this.charts.outcomes;
      chart.data.datasets[0].data = OUTCOMES.map((o) => stats.call_status_breakdown[o]);
      chart.update();
    }

    refreshActivity(force) {
      const wait = this.fetched.activity + ACTIVITY_REFRESH_MS - Date.now();
      if (this.timers.activity) return;
      this.timers.activity = setTimeout(() => this.loadActivity(), force ? 0 : Math.max(0, wait));
    }

    async loadActivity() {
      this.fetched.activity = Date.now();
      try {
        const points = await this.activity.points(this.stats || {});
        const chart = this.charts.activity;
        chart.data.labels = points.labels;
        chart.data.datasets[0].data = points.calls;
        chart.data.datasets[1].data = points.rate;
        chart.update();
        $("#activity-note").textContent = points.note;
      } catch (failure) {
        $("#activity-note").textContent = "Activity not available right now (" + failure.message + ").";
      } finally {
        this.timers.activity = null;
      }
    }

    refreshDurations(stats) {
      if (stats.calls_completed === this.answeredSeen || this.timers.durations) return;
      const wait = Math.max(0, this.fetched.durations + DURATIONS_REFRESH_MS - Date.now());
      this.timers.durations = setTimeout(() => this.loadDurations(), wait);
    }

    async loadDurations() {
      this.fetched.durations = Date.now();
      const note = $("#durations-note");
      try {
        const body = await apiGet("/getCampaignStats/" + encodeURIComponent(this.campaignId) + "?include=durations");
        this.answeredSeen = body.data.calls_completed;
        const durations = body.data.durations;
        if (!durations || !Array.isArray(durations.histogram)) throw new ApiFailure(400, "", "not available");
        const bins = durationBins(durations.histogram);
        const chart = this.charts.durations;
        chart.data.labels = bins.labels;
        chart.data.datasets[0].data = bins.counts;
        chart.update();
        note.textContent = durations.answered_calls
          ? "p50 " + formatSeconds(durations.p50) + " · p90 " + formatSeconds(durations.p90) + " · p99 " + formatSeconds(durations.p99) +
            " over " + numberFormat.format(durations.answered_calls) + " answered calls"
          : "No answered calls yet.";
      } catch (failure) {
        if (failure.status === 400) this.answeredSeen = this.stats && this.stats.calls_completed;
        if (failure.status === 429) {
          // Wait out Retry-After: the next try goes out when the campaign's quota has room again.
          const wait = 1000 * (failure.retryAfter || DURATIONS_REFRESH_MS / 1000);
          this.fetched.durations = Date.now() + wait - DURATIONS_REFRESH_MS;
          note.textContent = "Talk times: rate limited, refreshing in " + Math.ceil(wait / 1000) + " s.";
        } else {
          note.textContent = failure.status === 400 ? "not available yet" : "Talk times not available right now (" + failure.message + ").";
        }
      } finally {
        this.timers.durations = null;
        if (this.stats && this.stats.calls_completed !== this.answeredSeen) this.refreshDurations(this.stats);
      }
    }
  }

  function flash(element) {
    const tile = element.closest(".tile") || element;
    tile.classList.remove("flash");
    void tile.offsetWidth; // restart the animation
    tile.classList.add("flash");
  }

  function renderBar(bar, stats) {
    const total = stats.total_contacts;
    const widths = { completed: stats.calls_completed, failed: stats.calls_failed, in_progress: stats.calls_in_progress };
    for (const segment of $$("[data-seg]", bar)) {
      segment.style.width = percent(widths[segment.dataset.seg], total).toFixed(3) + "%";
    }
  }

  // ---------- the campaign list ----------

  /**
   * The account's campaigns, a page at a time, each with its progress. The figures come from
   * GET /getCampaignSummaries (one request for up to 200 campaigns, refreshed every 15 s), never from
   * getCampaignStats: an open list spends no campaign's stats quota.
   */
  class CampaignList {
    constructor() {
      this.cursor = null;
      this.ids = [];
      this.timer = null;
      this.stopped = false;
    }

    async start() {
      $("#campaign-rows").replaceChildren();
      this.cursor = null;
      this.ids = [];
      say($("#list-error"), "");
      await this.loadPage();
      this.schedule(LIST_REFRESH_MS);
    }

    stop() {
      this.stopped = true;
      clearTimeout(this.timer);
    }

    schedule(wait) {
      clearTimeout(this.timer);
      if (!this.stopped) this.timer = setTimeout(() => this.refresh(), wait);
    }

    async refresh() {
      const wait = await this.refreshSummaries(this.ids);
      this.schedule(wait || LIST_REFRESH_MS);
    }

    async loadPage() {
      const query = "?limit=50" + (this.cursor ? "&cursor=" + encodeURIComponent(this.cursor) : "");
      try {
        const body = await apiGet("/getCampaigns" + query);
        this.cursor = body.pagination.next_cursor;
        const ids = body.data.map((campaign) => this.addRow(campaign));
        this.ids.push(...ids);
        show($("#load-more"), Boolean(this.cursor));
        show($("#list-empty"), this.ids.length === 0);
        const wait = await this.refreshSummaries(ids);
        if (wait) this.schedule(wait);
      } catch (failure) {
        if (failure.status === 401) return app.signOut("Your API key is no longer accepted: " + failure.message);
        say($("#list-error"), "Could not load campaigns: " + failure.message);
      }
    }

    addRow(campaign) {
      const row = document.createElement("tr");
      row.dataset.campaignId = campaign.campaign_id;
      const link = document.createElement("a");
      link.href = "#/campaign/" + campaign.campaign_id;
      link.textContent = campaign.name;
      const bar = document.createElement("div");
      bar.className = "progress";
      for (const seg of ["completed", "failed", "in_progress"]) {
        const span = document.createElement("span");
        span.className = "seg " + seg.replace("_", "-");
        span.dataset.seg = seg;
        bar.append(span);
      }
      const cells = [link, bar, text("loading…", "contacts"), text("loading…", "rate"), text(new Date(campaign.created_at).toLocaleString())];
      for (const content of cells) {
        const cell = document.createElement("td");
        if (content.dataset && content.dataset.cell) cell.className = "num pending-cell";
        cell.append(content);
        row.append(cell);
      }
      $("#campaign-rows").append(row);
      return campaign.campaign_id;
    }

    /** Fills the rows of `ids` from getCampaignSummaries; returns the Retry-After wait in ms after a 429. */
    async refreshSummaries(ids) {
      let wait = 0;
      let problem = "";
      for (let start = 0; start < ids.length; start += SUMMARY_BATCH) {
        const batch = ids.slice(start, start + SUMMARY_BATCH);
        try {
          const body = await apiGet("/getCampaignSummaries?campaignIds=" + batch.map(encodeURIComponent).join(","));
          const found = new Map(body.data.map((summary) => [summary.campaign_id, summary]));
          for (const id of batch) {
            const summary = found.get(id);
            if (summary) this.renderRow(id, summary);
            else this.explainRow(id, "not found", "This campaign is no longer visible to this API key.", "pending-cell");
          }
        } catch (failure) {
          if (failure.status === 401) {
            app.signOut("Your API key is no longer accepted: " + failure.message);
            return 0;
          }
          if (failure.status === 429) {
            wait = Math.max(wait, 1000 * (failure.retryAfter || LIST_REFRESH_MS / 1000));
            problem = "rate limited, refreshing in " + Math.ceil(wait / 1000) + " s";
            for (const id of batch) this.explainRow(id, problem, failure.message, "limited-cell");
          } else {
            problem = "not available (" + failure.message + "), refreshing in " + LIST_REFRESH_MS / 1000 + " s";
            for (const id of batch) this.explainRow(id, "not available", failure.message, "pending-cell");
          }
        }
      }
      say($("#list-status"), problem ? "Campaign figures " + problem + "." : "");
      return wait;
    }

    renderRow(id, summary) {
      const row = $('tr[data-campaign-id="' + id + '"]');
      if (!row) return;
      const final = summary.calls_completed + summary.calls_failed;
      renderBar($(".progress", row), summary);
      const contacts = $('[data-cell="contacts"]', row);
      const rate = $('[data-cell="rate"]', row);
      row.dataset.filled = "true";
      contacts.textContent = numberFormat.format(final) + " / " + numberFormat.format(summary.total_contacts);
      rate.textContent = summary.success_rate.toFixed(2) + " %";
      for (const cell of [contacts, rate]) {
        cell.title = "";
        cell.parentElement.className = "num";
      }
    }

    /**
     * A row whose figures cannot be read now: says why instead of a bare dash. Figures read earlier
     * stay (dimmed, the reason in their tooltip); #list-status says when they refresh.
     */
    explainRow(id, shown, reason, kind) {
      const row = $('tr[data-campaign-id="' + id + '"]');
      if (!row) return;
      for (const cell of $$("[data-cell]", row)) {
        if (cell.dataset.cell !== "contacts" && cell.dataset.cell !== "rate") continue;
        if (!row.dataset.filled) cell.textContent = shown;
        cell.title = shown + ": " + reason;
        cell.parentElement.className = "num " + kind;
      }
    }
  }

  function text(value, cell) {
    const span = document.createElement("span");
    span.textContent = value;
    if (cell) span.dataset.cell = cell;
    return span;
  }

  // ---------- sign-in, routing ----------

  const app = {
    page: null,

    async signIn(event) {
      event.preventDefault();
      const input = $("#api-key");
      const key = input.value.trim();
      const button = $("#signin-button");
      button.disabled = true;
      say($("#signin-error"), "");
      try {
        await apiGet("/getCampaigns?limit=1", key);
        session.signIn(key);
        input.value = "";
        this.route();
      } catch (failure) {
        const reason = failure.status === 401
          ? "This API key was not accepted (" + failure.message + "). Check that you pasted the whole key."
          : failure.status === 0 ? failure.message : "Sign-in failed: " + failure.message;
        say($("#signin-error"), reason);
      } finally {
        button.disabled = false;
      }
    },

    signOut(message) {
      session.signOut();
      this.route();
      say($("#signin-error"), message || "");
    },

    leave() {
      if (this.page) this.page.stop();
      this.page = null;
    },

    route() {
      this.leave();
      const signedIn = Boolean(session.key());
      show($("#sign-out"), signedIn);
      for (const view of $$(".view")) show(view, false);
      if (!signedIn) {
        show($("#signin-view"), true);
        $("#api-key").focus();
        return;
      }
      const match = /^#\/campaign\/([0-9a-fA-F-]{36})$/.exec(location.hash);
      show(match ? $("#campaign-view") : $("#list-view"), true);
      this.page = match ? new CampaignPage(match[1].toLowerCase()) : new CampaignList();
      this.page.start();
    },
  };

  document.addEventListener("DOMContentLoaded", () => {
    $("#signin-form").addEventListener("submit", (event) => app.signIn(event));
    $("#sign-out").addEventListener("click", () => app.signOut());
    $("#load-more").addEventListener("click", () => app.page && app.page.loadPage && app.page.loadPage());
    window.addEventListener("hashchange", () => app.route());
    app.route();
  });
})();
