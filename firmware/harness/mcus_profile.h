/* Per-layer markers: generated model code includes this header (when it is on the include path,
 * i.e. in firmware builds) and wraps every kernel call in MCUS_LAYER_BEGIN(i) / MCUS_LAYER_END(i).
 * The harness accumulates the timer ticks between the two per layer (mcus_profile in harness.h).
 * Build with -DMCUS_NO_LAYER_MARKERS for a model without markers (the macros stay empty). */
#ifndef MCUS_PROFILE_H
#define MCUS_PROFILE_H

#include <stdint.h>

void mcus_layer_begin(uint32_t layer);
void mcus_layer_end(uint32_t layer);

#ifndef MCUS_NO_LAYER_MARKERS
#define MCUS_LAYER_BEGIN(i) mcus_layer_begin((uint32_t)(i))
#define MCUS_LAYER_END(i) mcus_layer_end((uint32_t)(i))
#endif

#endif
