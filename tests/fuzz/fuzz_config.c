/* fuzz_config.c - fuzz target: config.json text through g4_config_parse (csrc/model/config.c). */
#include <stdlib.h>

#include "fuzz_target.h"
#include "model/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = g4_fuzz_cstr(data, size);
    if (!text) return 0;
    g4_config cfg;
    g4_error err;
    if (g4_config_parse(&cfg, text, &err) == 0) (void)g4_config_count_layers(&cfg, G4_LAYER_GLOBAL);
    free(text);
    return 0;
}
