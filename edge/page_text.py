"""The live page's words, per language (``http.language``, else ``suggestions.language``).

The page writes everything it composes from these: headings, buttons, the emotions and camera
states it names, the personal fit's outcome and advice, and why a button did nothing (by the
code the daemon gives with its English words). Templates take ``{name}`` fields, which the
page's script fills in. The video's own captions are the model's labels, as on MQTT.
"""

from __future__ import annotations

from typing import Any

PAGE_TEXT: dict[str, dict[str, Any]] = {
    "en": {
        "title": "YUZUG live",
        "video_alt": "live camera view with face boxes",
        "emotion": "emotion",
        "scores": "scores",
        "suggestion": "suggestion",
        "another": "another",
        "not_for_me": "not for me",
        "bring_back": "bring back {n} dismissed",
        "fit_title": "fit to you",
        "fit_prompt": "fit to you: show the camera your",
        "fit_unavailable": "off: set classifier.personal_file to fit the model to you",
        "forget": "forget",
        "get_ready": "get ready: {n}",
        "recording": "recording {label}: {seconds} s left · {faces} faces",
        "forgotten": "forgotten: the model's own scores again",
        "read_right": "read right: {changes}",
        "applied": {
            "off": "off",
            "on": "on: {offsets} (from {faces} recorded faces)",
            "no_offsets": "no offsets",
            "not_applied": {
                "other_model": "not applied: it was fitted for another model; record your "
                "faces again to fit this one",
                "unreadable": "not applied: its file cannot be read (the log says why); "
                "record your faces again",
            },
        },
        # Why a button did nothing, or a recording was not kept (edge.errors.REASON_CODES).
        "why": {
            "paused": "the camera is closed",
            "busy": "a recording is already running",
            "no_face": "no face was seen",
            "model_changed": "a new model arrived during the recording",
            "nothing_to_suggest": "nothing to suggest without an emotion",
            "no_other_suggestion": "no other suggestion suits this hour",
            "nothing_shown": "no suggestion is shown",
            "unknown_suggestion": "that suggestion is no longer there",
        },
        "hints": {
            "record_relaxed": "record the relaxed face too: without it, raising {labels} also "
            "reads relaxed faces so more often",
            "not_recorded": "not recorded: {labels}; its offset only keeps the recorded faces "
            "from being read so; record it too for a balanced fit",
        },
        "faces": {"one": "{n} face", "other": "{n} faces"},
        "regions_title": "parts of the picture left out (a TV, a poster)",
        "mark": "mark one on the video",
        "mark_done": "done marking",
        "clear_marks": "clear marked",
        "regions_set": "to leave them out, set this under [camera] in edge.toml (or with "
        "yuzug-deploy config --set camera.ignore_regions=…) and restart:",
        "paused_switch": "the privacy switch is on",
        "paused_hours": "privacy hours {hours}",
        "health": "{fps} fps · camera {camera} · model {model}",
        "unreachable": "daemon unreachable",
        "turned": "faces look turned: set camera.rotation = {rotation}",
        "mood_title": "mood over the last {window}",
        "window": {"one": "minute", "other": "{n} minutes"},
        "timeline_label": "the reported emotion over the last minutes",
        "timeline_start": "−{n} min",
        "now": "now",
        "diary_title": "mood diary: each day's share of the time a face was seen",
        "diary_label": "the share of each emotion per day",
        "today": "today: {seen} seen",
        "seconds": "{n} s",
        "minutes": "{n} min",
        # The names the page gives labels and states; a label not here is shown as it is.
        "labels": {"no_face": "no face"},
        "fit_faces": {"none": "relaxed face", "neutral": "relaxed face"},
        "camera": {},
    },
    "tr": {
        "title": "YUZUG canlı",
        "video_alt": "yüz kutularıyla canlı kamera görüntüsü",
        "emotion": "duygu",
        "scores": "olasılıklar",
        "suggestion": "öneri",
        "another": "başka öneri",
        "not_for_me": "bana göre değil",
        "bring_back": "reddedilen {n} öneriyi geri getir",
        "fit_title": "sana uyarla",
        "fit_prompt": "sana uyarla: kameraya göster",
        "fit_unavailable": "kapalı: modeli sana uyarlamak için classifier.personal_file "
        "ayarını yap",
        "forget": "unut",
        "get_ready": "hazırlan: {n}",
        "recording": "{label} kaydediliyor: {seconds} sn kaldı · {faces} yüz",
        "forgotten": "unutuldu: yine modelin kendi olasılıkları",
        "read_right": "doğru okunan: {changes}",
        "applied": {
            "off": "kapalı",
            "on": "açık: {offsets} (kaydedilen {faces} yüzden)",
            "no_offsets": "düzeltme yok",
            "not_applied": {
                "other_model": "uygulanmadı: başka bir model için yapılmıştı; bu modele "
                "uyarlamak için yüzlerini yeniden kaydet",
                "unreadable": "uygulanmadı: dosyası okunamıyor (nedeni günlükte); yüzlerini "
                "yeniden kaydet",
            },
        },
        "why": {
            "paused": "kamera kapalı",
            "busy": "zaten bir kayıt sürüyor",
            "no_face": "hiç yüz görülmedi",
            "model_changed": "kayıt sırasında yeni bir model geldi",
            "nothing_to_suggest": "duygu yokken önerilecek bir şey yok",
            "no_other_suggestion": "bu saate uyan başka öneri yok",
            "nothing_shown": "gösterilen bir öneri yok",
            "unknown_suggestion": "bu öneri artık yok",
        },
        "hints": {
            "record_relaxed": "rahat yüzü de kaydet: o olmadan {labels} yükseltilince rahat "
            "yüzler de daha sık öyle okunur",
            "not_recorded": "kaydedilmedi: {labels}; düzeltmesi yalnızca kaydedilen yüzlerin "
            "öyle okunmasını önler; dengeli bir uyarlama için onu da kaydet",
        },
        "faces": {"one": "{n} yüz", "other": "{n} yüz"},
        "regions_title": "resmin dışarıda bırakılan yerleri (televizyon, poster)",
        "mark": "videoda bir yer işaretle",
        "mark_done": "işaretleme bitti",
        "clear_marks": "işaretleri sil",
        "regions_set": "oradaki yüzleri dışarıda bırakmak için bunu edge.toml'da [camera] "
        "altına yaz (ya da yuzug-deploy config --set camera.ignore_regions=… ile) ve yeniden "
        "başlat:",
        "paused_switch": "gizlilik anahtarı açık",
        "paused_hours": "gizlilik saatleri: {hours}",
        "health": "{fps} fps · kamera {camera} · model {model}",
        "unreachable": "YUZUG servisine ulaşılamıyor",
        "turned": "yüzler döndürülmüş görünüyor: camera.rotation = {rotation} ayarını yap",
        "mood_title": "ruh hâli: son {window}",
        "window": {"one": "dakika", "other": "{n} dakika"},
        "timeline_label": "son dakikalarda bildirilen duygu",
        "timeline_start": "−{n} dk",
        "now": "şimdi",
        "diary_title": "duygu günlüğü: her gün, yüz görülen sürenin duygulara dağılımı",
        "diary_label": "her günün duygu payları",
        "today": "bugün: {seen} yüz görüldü",
        "seconds": "{n} sn",
        "minutes": "{n} dk",
        "labels": {
            "angry": "kızgın",
            "happy": "mutlu",
            "sad": "üzgün",
            "none": "hiçbiri",
            "neutral": "nötr",
            "surprise": "şaşkın",
            "fear": "korkmuş",
            "disgust": "tiksinmiş",
            "no_face": "yüz yok",
            "paused": "duraklatıldı",
        },
        "fit_faces": {"none": "rahat yüz", "neutral": "rahat yüz"},
        "camera": {
            "ok": "çalışıyor",
            "starting": "açılıyor",
            "paused": "kapalı",
            "lost": "yok",
            "failed": "açılamadı",
            "ended": "bitti",
        },
    },
}


def page_text(language: str) -> dict[str, Any]:
    """The words for ``language``; the config allows only languages that are here."""
    return PAGE_TEXT[language]
