/* vision_absent.c — model/vision.h for a tree without the vision tower's implementation (vision.c):
 * no model has a tower, so the engine refuses images. Built only while vision.c is absent
 * (csrc/model/CMakeLists.txt); it goes when the tower is merged. */
#include "model/vision.h"

g4_vision *g4_model_vision(g4_model *m) {
    (void)m;
    return NULL;
}

int g4_vision_encode(g4_vision *v, const float *patches, int ph, int pw, float *out, g4_error *err) {
    (void)v, (void)patches, (void)ph, (void)pw, (void)out;
    return g4_fail(err, "vision: this build has no vision tower");
}
