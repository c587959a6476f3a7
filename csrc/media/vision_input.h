/* vision_input.h — one request's images and video frames, from each file's bytes to the vision
 * tower's input, the one copy every protocol calls: at most G4_VISION_MAX_REQUEST_ITEMS items, on
 * a server with a tower; each file decoded within the byte and pixel caps, its soft tokens counted
 * (with its two delimiters) against the model's context length before any patch is made (a soft
 * token's patches take 27 KiB), preprocessed at its budget (a video frame: G4_VISION_VIDEO_BUDGET,
 * as transformers' video processor) and checked against the tower's patch grid.
 * The messages here are the contract both front-ends return; each prefixes the part it names and
 * maps the refusal to its own status (HTTP 400 "messages[m].content[p]: ...", gRPC
 * INVALID_ARGUMENT "chat.messages[m].images[k]: ...").
 * Once the prompt builder has placed the runs (text/prompt.h fills pos), the items become the
 * engine's (g4_mm_item, base/mm_item.h) for g4_request_params.mm.
 * Not here: where the bytes come from (an image URL: media_source.h), the placeholder runs. */
#ifndef G4_MEDIA_VISION_INPUT_H
#define G4_MEDIA_VISION_INPUT_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "base/mm_item.h"
#include "media/image.h"
#include "media/vision_preprocess.h"

/* What a server takes. */
typedef struct g4_vision_limits {
    g4_image_limits image; /* each file's encoded bytes and decoded pixels */
    int grid;              /* the tower's position-table side (g4_vision_grid_fits); 0 = no tower */
    int max_model_len;     /* the items' prompt tokens together must fit it */
} g4_vision_limits;

/* A request's items in prompt order, held until the engine has copied the patches at submit.
 * Zero-initialised, it is an empty request; g4_vision_input_free empties it again. */
typedef struct g4_vision_input {
    g4_vision_limits lim;
    int image_budget;                                  /* soft tokens an image gets */
    int n;                                             /* items added */
    int prompt_tokens;                                 /* theirs: soft tokens + 2 each */
    g4_vision_pixels px[G4_VISION_MAX_REQUEST_ITEMS];  /* the tower's input */
    int n_tokens[G4_VISION_MAX_REQUEST_ITEMS];         /* soft tokens: the prompt's image_tokens */
    int pos[G4_VISION_MAX_REQUEST_ITEMS];              /* first placeholder: the prompt builder's */
    int video[G4_VISION_MAX_REQUEST_ITEMS];            /* -1 an image, else its video's number */
    double seconds[G4_VISION_MAX_REQUEST_ITEMS];       /* a frame's timestamp (index / fps) */
    g4_mm_item items[G4_VISION_MAX_REQUEST_ITEMS];     /* the engine's, by g4_vision_input_items */
} g4_vision_input;

/* What g4_vision_input_add refuses. */
enum {
    G4_VISION_BAD_FILE = -1, /* this file: undecodable, over a cap, a grid the tower does not take */
    G4_VISION_TOO_LONG = -2, /* the items so far: more prompt tokens than the model's context */
};

/* The refusal for media on a server without a vision tower ("image input is not supported
 * (...)"; video != 0: "video input"): −1 with err. */
int g4_vision_unsupported(int video, g4_error *err);
/* A video of n_frames frames: 0, or −1 with err when it has more than Gemma 4 reads
 * (G4_VISION_MAX_VIDEO_FRAMES). */
int g4_vision_frames_fit(size_t n_frames, g4_error *err);
/* Starts v (empty) for a request of n > 0 items, images at image_budget (one that
 * g4_vision_budget_valid accepts before the first add: the caller checks it, naming its own
 * field): 0, or −1 with err for more than G4_VISION_MAX_REQUEST_ITEMS items
 * or, then, a server without a tower (g4_vision_unsupported; first_is_video: the first item is a
 * video frame). */
int g4_vision_input_begin(g4_vision_input *v, const g4_vision_limits *lim, size_t n, int image_budget,
                          int first_is_video, g4_error *err);
/* Adds one file as item v->n: an image (video −1) or a frame of video `video` at `seconds`.
 * 0; G4_VISION_BAD_FILE or G4_VISION_TOO_LONG with err. Nothing is added or left on failure. */
int g4_vision_input_add(g4_vision_input *v, const uint8_t *data, size_t len, int video, double seconds, g4_error *err);
/* The engine's items from the added files and pos (which the prompt builder has filled):
 * v->items[0..n), in prompt order, pointing at v's patches. */
void g4_vision_input_items(g4_vision_input *v);
/* Frees the items' patches; v is empty after. */
void g4_vision_input_free(g4_vision_input *v);

#endif
