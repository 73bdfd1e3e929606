// Host stand-in for ESP-DL 3.3.9's dl::Model, dl::TensorBase and fbs::model_location_type_t: the public declarations
// copied from esp-dl/dl/model/include/dl_model_base.hpp, dl/tensor/include/dl_tensor_base.hpp, dl/dl_define.hpp and
// fbs_loader/include/fbs_model.hpp (doc comments, private members and bodies dropped; declarations only).
// tests/test_readme_cpp.py compares the lines marked there with the real headers when an esp-dl checkout is at hand.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "esp_err.h"

namespace fbs {
typedef enum {
    MODEL_LOCATION_IN_FLASH_RODATA = 0,    // The model in FLASH .rodata section
    MODEL_LOCATION_IN_FLASH_PARTITION = 1, // The model in SPIFFS
    MODEL_LOCATION_IN_SDCARD = 2,          // The model in SDCard
    MODEL_LOCATION_MAX = MODEL_LOCATION_IN_SDCARD,
} model_location_type_t;
// What the pose test app's dl::Model::test() guard calls (test_apps/pose; tests/test_firmware_stack.py).
class FbsModel {
public:
    const void *get_test_input_tensor_raw_data(std::string tensor_name);
    void clear_map();
    void load_map();
};
} // namespace fbs

namespace dl {
typedef enum {
    RUNTIME_MODE_AUTO = 0,        // Automatically select single-core or multi-core runtime
    RUNTIME_MODE_SINGLE_CORE = 1, // Always select single-core runtime
    RUNTIME_MODE_MULTI_CORE = 2,  // Always select multi-core runtime(dual core for ESP32-S3 and ESP32-P4)
} runtime_mode_t;

typedef enum {
    DATA_TYPE_UNDEFINED = 0,
    DATA_TYPE_FLOAT = 1,
    DATA_TYPE_UINT8 = 2,
    DATA_TYPE_INT8 = 3,
    DATA_TYPE_UINT16 = 4,
    DATA_TYPE_INT16 = 5,
    DATA_TYPE_INT32 = 6,
    DATA_TYPE_INT64 = 7,
    DATA_TYPE_STRING = 8,
    DATA_TYPE_BOOL = 9,
    DATA_TYPE_FLOAT16 = 10,
    DATA_TYPE_DOUBLE = 11,
    DATA_TYPE_UINT32 = 12,
    DATA_TYPE_UINT64 = 13,
    DATA_TYPE_MIN = DATA_TYPE_UNDEFINED,
    DATA_TYPE_MAX = DATA_TYPE_UINT64
} dtype_t;

// currently only support MEMORY_MANAGER_GREEDY
typedef enum { MEMORY_MANAGER_GREEDY = 0, LINEAR_MEMORY_MANAGER = 1 } memory_manager_t;

// Per-tensor or per-channel exponents; converts to the per-tensor one.
class ExponentInfo {
public:
    ExponentInfo(int exponent = 0) : m_exponent(exponent) {}
    int get(int ch = -1) const;
    operator int() const { return m_exponent; }
    bool is_per_channel() const;
    int channel_size() const;

private:
    int m_exponent;
};

class TensorBase {
public:
    int size;                     ///< size of element including padding
    std::vector<int> shape;       ///< shape of Tensor
    dtype_t dtype;                ///< data type of element
    ExponentInfo exponent;        ///< exponent of element (per-tensor or per-channel)
    bool auto_free;               ///< free element when object destroy
    std::vector<int> axis_offset; ///< element offset of each axis
    void *data;                   ///< data pointer
    void *cache;                  ///< cache pointer， used for preload and do not need to free
    uint32_t caps;                ///< flags indicating the type of memory

    virtual ~TensorBase() {}
    int get_size() { return this->size; }
    size_t get_dtype_bytes();
    int get_bytes() { return this->size * this->get_dtype_bytes(); }
    std::vector<int> get_shape() { return this->shape; }
    int get_exponent() { return this->exponent; }
    dtype_t get_dtype() { return this->dtype; }
};

class Model {
public:
    Model() {}
    Model(const char *rodata_address_or_partition_label_or_path,
          fbs::model_location_type_t location = fbs::MODEL_LOCATION_IN_FLASH_RODATA,
          int max_internal_size = 0,
          memory_manager_t mm_type = MEMORY_MANAGER_GREEDY,
          const uint8_t *key = nullptr,
          bool param_copy = true,
          const std::map<std::string, std::vector<int>> &input_shapes = {});
    Model(const char *rodata_address_or_partition_label_or_path,
          int model_index,
          fbs::model_location_type_t location = fbs::MODEL_LOCATION_IN_FLASH_RODATA,
          int max_internal_size = 0,
          memory_manager_t mm_type = MEMORY_MANAGER_GREEDY,
          const uint8_t *key = nullptr,
          bool param_copy = true,
          const std::map<std::string, std::vector<int>> &input_shapes = {});
    Model(const char *rodata_address_or_partition_label_or_path,
          const char *model_name,
          fbs::model_location_type_t location = fbs::MODEL_LOCATION_IN_FLASH_RODATA,
          int max_internal_size = 0,
          memory_manager_t mm_type = MEMORY_MANAGER_GREEDY,
          const uint8_t *key = nullptr,
          bool param_copy = true,
          const std::map<std::string, std::vector<int>> &input_shapes = {});
    virtual ~Model();
    virtual void run(runtime_mode_t mode = RUNTIME_MODE_SINGLE_CORE);
    virtual void run(TensorBase *input, runtime_mode_t mode = RUNTIME_MODE_SINGLE_CORE);
    virtual void run(std::map<std::string, TensorBase *> &user_inputs,
                     runtime_mode_t mode = RUNTIME_MODE_SINGLE_CORE,
                     std::map<std::string, TensorBase *> user_outputs = {});
    void minimize();
    esp_err_t test();
    void profile_memory();
    void profile_module(bool sort_module_by_latency = false);
    void profile(bool sort_module_by_latency = false);
    virtual std::map<std::string, TensorBase *> &get_inputs();
    virtual TensorBase *get_input();
    virtual TensorBase *get_input(const std::string &name);
    virtual TensorBase *get_intermediate(const std::string &name);
    virtual std::map<std::string, TensorBase *> &get_outputs();
    virtual TensorBase *get_output();
    virtual TensorBase *get_output(const std::string &name);
    std::string get_metadata_prop(const std::string &key);
    virtual fbs::FbsModel *get_fbs_model();
};
} // namespace dl
