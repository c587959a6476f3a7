/* dtype.h — element types of tensors: the checkpoint's (safetensors names) and the backends'.
 *
 * A ground-floor type: the checkpoint reader (model/safetensors.h), the op table
 * (backend/backend.h), the collectives (base/comm.h) and the kernels all name element types
 * with it. Not here: conversions between them (base/bf16.h). */
#ifndef G4_BASE_DTYPE_H
#define G4_BASE_DTYPE_H

#include <stddef.h>

typedef enum { G4_DT_BF16 = 0, G4_DT_F16, G4_DT_F32, G4_DT_I32, G4_DT_I64, G4_DT_COUNT } g4_dtype;

#define G4_MAX_DIMS 4 /* most dimensions a tensor may have */

/* Bytes per element; 0 for a value outside the enum. */
size_t g4_dtype_size(g4_dtype dt);
/* The safetensors spelling ("BF16", "F32", ...); "?" for a value outside the enum. */
const char *g4_dtype_name(g4_dtype dt);
/* The dtype spelled `name` (safetensors spelling) in *out: 0, or -1 when no dtype has that name. */
int g4_dtype_parse(const char *name, g4_dtype *out);

#endif
